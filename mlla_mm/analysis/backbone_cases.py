"""What the backbone benchmarks measure and how a process is measured: the presets (our
backbones and their attention peers, as model configs), specs and sizes, building a model,
the loss of a training step, the process's resident memory, the machine's description.

Shared by the resolution-scaling benchmark (:mod:`mlla_mm.analysis.benchmark`) and the
side-by-side runs (:mod:`mlla_mm.analysis.side_by_side`), whose workers import it from the
tree they measure.
"""
import json
import os
import platform
import time
from typing import Any, Dict, Optional, Tuple, Union

#: Backbones by name: an mmengine-style model config and the registry scope that
#: builds it (None: mmengine's root registry, which holds our backbones).
PRESETS: Dict[str, Dict[str, Any]] = {
    'MLLA-T': dict(cfg=dict(type='MLLA', arch='tiny'), scope=None),
    'VMamba-T': dict(cfg=dict(type='VMamba', arch='tiny'), scope=None),
    'Vim-Ti': dict(cfg=dict(type='Vim', arch='tiny'), scope=None),
    # The SSM-free control: Gated CNN blocks (MambaOut paper).
    'MambaOut-T': dict(cfg=dict(type='MambaOut', arch='tiny'), scope=None),
    # MHS-VM: VMamba-T's frame with Multi-Head Scan mixers, and VM-UNet + MHS (4 heads; its
    # outputs are the decoder's full-resolution map)
    'MHSVMamba-T': dict(cfg=dict(type='MHSVMamba', arch='tiny'), scope=None),
    'VMUNet-MHS-4h': dict(cfg=dict(type='VMUNet', arch='4h'), scope=None),
    # mmdet's Swin-T with the Mask R-CNN settings (window 7, 4 stages).
    'Swin-T': dict(
        cfg=dict(type='SwinTransformer', embed_dims=96, depths=[2, 2, 6, 2],
                 num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4, qkv_bias=True,
                 drop_path_rate=0.2, patch_norm=True, out_indices=(0, 1, 2, 3)),
        scope='mmdet'),
    # Global attention at Vim-Ti's width: DeiT-Ti (192 wide, 12 layers, 3 heads),
    # patch 16; the 14×14 position table is interpolated to any input size.
    'ViT-Ti': dict(
        cfg=dict(type='VisionTransformer', arch='deit-tiny', img_size=224, patch_size=16,
                 out_type='featmap', drop_path_rate=0.1),
        scope='mmpretrain'),
}
# The high-resolution family, all with their four branches out (HRNet's dense layout):
# HRVMamba and its papers' peers HRNet-W32 (mmdet's HRNet) and HRFormer-S (mmpose's).
_HRNET_W32 = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                num_channels=(64, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                num_channels=(32, 64)),
    stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                num_channels=(32, 64, 128)),
    stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                num_channels=(32, 64, 128, 256)))


def _hrformer_stage(modules, widths, heads):
    n = len(widths)
    return dict(num_modules=modules, num_branches=n, block='HRFORMERBLOCK', num_blocks=(2, ) * n,
                num_channels=widths, num_heads=heads, mlp_ratios=[4] * n, window_sizes=[7] * n)


# mmpose's td-hm_hrformer-small_8xb32-210e_coco-256x192.py, stage 4 multi-scale.
_HRFORMER_S = dict(
    drop_path_rate=0.1, with_rpe=True,
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(2, ),
                num_channels=(64, ), num_heads=[2], num_mlp_ratios=[4]),
    stage2=_hrformer_stage(1, (32, 64), [1, 2]),
    stage3=_hrformer_stage(4, (32, 64, 128), [1, 2, 4]),
    stage4=dict(_hrformer_stage(2, (32, 64, 128, 256), [1, 2, 4, 8]), multiscale_output=True))
PRESETS.update({
    'HRVMamba-T': dict(cfg=dict(type='HRVMamba', arch='tiny', with_out_norms=False), scope=None),
    'HRVMamba-S': dict(cfg=dict(type='HRVMamba', arch='small', with_out_norms=False), scope=None),
    'HRNet-W32': dict(cfg=dict(type='HRNet', extra=_HRNET_W32), scope='mmdet'),
    'HRFormer-S': dict(cfg=dict(type='HRFormer', extra=_HRFORMER_S), scope='mmpose'),
})
DEFAULT_BACKBONES = ('MLLA-T', 'VMamba-T', 'Vim-Ti', 'MambaOut-T', 'Swin-T', 'ViT-Ti')
DEFAULT_SIZES = (224, 512, 1024, 1248, 2048)
Size = Union[int, str]


def parse_size(size: Any) -> Size:
    """A size as the results record it: ``512`` (square) or ``'256x192'`` (H x W)."""
    height, width = size_hw(size)
    return height if height == width else f'{height}x{width}'


def size_hw(size: Any) -> Tuple[int, int]:
    """(H, W) of ``512``, ``'512'``, ``'256x192'`` or ``(256, 192)``."""
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    text = str(size).lower()
    try:
        if 'x' in text:
            height, width = text.split('x')
            return int(height), int(width)
        return int(text), int(text)
    except ValueError:
        raise ValueError(f'size {size!r}: give pixels per side (512) or HxW (256x192)') from None


def resolve_spec(item: Any) -> Dict[str, Any]:
    """A backbone spec ``{name, cfg, scope}`` from a preset name, ``NAME=JSON`` or a dict.

    ``cfg['type']`` may also be ``'package.module:ClassName'`` (imported, then
    called with the remaining keys), which lets tests benchmark a local class.
    """
    if isinstance(item, dict):
        spec = dict(item)
        if 'name' not in spec or 'cfg' not in spec:
            raise ValueError(f'a backbone spec needs `name` and `cfg`, got {sorted(spec)}.')
        spec.setdefault('scope', None)
        return spec
    if item in PRESETS:
        return dict(name=item, **PRESETS[item])
    if '=' in item:
        name, text = item.split('=', 1)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f'backbone {name!r}: {text!r} is not JSON ({err}).') from None
        if 'cfg' not in payload:
            payload = dict(cfg=payload)
        return dict(name=name, cfg=payload['cfg'], scope=payload.get('scope'))
    raise ValueError(f'unknown backbone {item!r}: use one of {sorted(PRESETS)} or '
                     "NAME='{\"type\": ..., ...}' (JSON model config).")


def build_backbone(spec: Dict[str, Any]):
    """Build the module a spec describes (imports ``mlla_mm`` to register ours)."""
    import importlib
    cfg = dict(spec['cfg'])
    type_ = cfg.get('type')
    if isinstance(type_, str) and ':' in type_:
        module, cls = type_.split(':', 1)
        cfg.pop('type')
        return getattr(importlib.import_module(module), cls)(**cfg)
    from .flops import build_model_from_cfg
    return build_model_from_cfg(cfg, spec.get('scope'))


# --------------------------------------------------------------------------------------
# measuring a process
# --------------------------------------------------------------------------------------
def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _loss(outputs):
    import torch
    if isinstance(outputs, torch.Tensor):
        return outputs.float().mean()
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return sum(_loss(o) for o in outputs)


def machine_info(device: str = 'cpu') -> Dict[str, Any]:
    """What the numbers were measured on."""
    import torch
    info = dict(python=platform.python_version(), torch=torch.__version__,
                machine=platform.machine(), cpus=os.cpu_count(), threads=torch.get_num_threads(),
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    try:
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next(line.split(':', 1)[1].strip() for line in f
                               if line.startswith('model name'))
    except (OSError, StopIteration):
        info['cpu'] = platform.processor()
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(device)
        try:
            import triton
            info['triton'] = triton.__version__
        except ImportError:
            pass
    info['label'] = (f"{info.get('gpu')} (CUDA), torch {info['torch']}" if 'gpu' in info else
                     f"{info['cpus']}-core {info['machine']} CPU ({info['cpu']}), "
                     f"{info['threads']} torch threads, torch {info['torch']}")
    return info
