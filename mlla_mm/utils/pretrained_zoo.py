"""The official ImageNet-1k checkpoints our configs start from: one table.

``tools/download_checkpoints.py`` downloads and verifies these files into ``checkpoints/``;
each config's ``init_cfg`` names one of them by file name (``tests/test_configs.py`` checks
that every named file has a row, with the config's backbone type and arch).

To add a family: append its rows (one per line, file names as the configs write them) and,
if its backbone adds modules for dense prediction that ImageNet checkpoints lack (per-output
norms, adapters), the build arguments that leave them out to :data:`IMAGENET_TRUNK`.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One file of an upstream release.

    Attributes:
        file: name under ``checkpoints/``, as the configs' ``init_cfg`` write it.
        url: the upstream download link.
        backbone: our registered backbone type that loads it.
        arch: that backbone's preset name (or an arch dict).
        top1: published ImageNet-1k top-1 (%).
        source: where the link is published.
    """
    file: str
    url: str
    backbone: str
    arch: Union[str, dict]
    top1: float
    source: str


_MLLA = 'LeapLabTHU/MLLA README'
_VMAMBA = 'MzeroMiko/VMamba release #v2cls'
_VIM = 'hustvl/Vim README (Hugging Face)'
_MAMBAOUT = 'yuweihao/MambaOut release "model" (models/mambaout.py default_cfgs)'
_HF_VIM = 'https://huggingface.co/hustvl/Vim-{}-midclstok/resolve/main/{}'
_GH_VMAMBA = 'https://github.com/MzeroMiko/VMamba/releases/download/%23v2cls/{}'
_GH_MAMBAOUT = 'https://github.com/yuweihao/MambaOut/releases/download/model/{}'
# Google Drive: downloaded by hand (tools/download_checkpoints.py says how), then verified.
_HRVMAMBA = 'zhanghao5201/HRVMamba README (Google Drive: manual download)'
_DRIVE = 'https://drive.google.com/file/d/{}/view?usp=sharing'

# fmt: off
OFFICIAL_CHECKPOINTS: Tuple[OfficialCheckpoint, ...] = (
    OfficialCheckpoint('MLLA_T.pth', 'https://cloud.tsinghua.edu.cn/f/7a19712877cb4242889c/?dl=1', 'MLLA', 'tiny', 83.5, _MLLA),  # noqa: E501
    OfficialCheckpoint('MLLA_S.pth', 'https://cloud.tsinghua.edu.cn/f/0e5d0b1409d540aaa80c/?dl=1', 'MLLA', 'small', 84.4, _MLLA),  # noqa: E501
    OfficialCheckpoint('MLLA_B.pth', 'https://cloud.tsinghua.edu.cn/f/91c85c5a1061496d8796/?dl=1', 'MLLA', 'base', 85.3, _MLLA),  # noqa: E501
    OfficialCheckpoint('vssm1_tiny_0230s_ckpt_epoch_264.pth', _GH_VMAMBA.format('vssm1_tiny_0230s_ckpt_epoch_264.pth'), 'VMamba', 'tiny', 82.6, _VMAMBA),  # noqa: E501
    OfficialCheckpoint('vssm_small_0229_ckpt_epoch_222.pth', _GH_VMAMBA.format('vssm_small_0229_ckpt_epoch_222.pth'), 'VMamba', 'small', 83.6, _VMAMBA),  # noqa: E501
    OfficialCheckpoint('vssm_base_0229_ckpt_epoch_237.pth', _GH_VMAMBA.format('vssm_base_0229_ckpt_epoch_237.pth'), 'VMamba', 'base', 83.9, _VMAMBA),  # noqa: E501
    OfficialCheckpoint('vim_t_midclstok_76p1acc.pth', _HF_VIM.format('tiny', 'vim_t_midclstok_76p1acc.pth'), 'Vim', 'tiny', 76.1, _VIM),  # noqa: E501
    OfficialCheckpoint('vim_s_midclstok_80p5acc.pth', _HF_VIM.format('small', 'vim_s_midclstok_80p5acc.pth'), 'Vim', 'small', 80.5, _VIM),  # noqa: E501
    OfficialCheckpoint('vim_b_midclstok_81p9acc.pth', _HF_VIM.format('base', 'vim_b_midclstok_81p9acc.pth'), 'Vim', 'base', 81.9, _VIM),  # noqa: E501
    OfficialCheckpoint('mambaout_femto.pth', _GH_MAMBAOUT.format('mambaout_femto.pth'), 'MambaOut', 'femto', 78.9, _MAMBAOUT),  # noqa: E501
    OfficialCheckpoint('mambaout_kobe.pth', _GH_MAMBAOUT.format('mambaout_kobe.pth'), 'MambaOut', 'kobe', 80.0, _MAMBAOUT),  # noqa: E501
    OfficialCheckpoint('mambaout_tiny.pth', _GH_MAMBAOUT.format('mambaout_tiny.pth'), 'MambaOut', 'tiny', 82.7, _MAMBAOUT),  # noqa: E501
    OfficialCheckpoint('mambaout_small.pth', _GH_MAMBAOUT.format('mambaout_small.pth'), 'MambaOut', 'small', 84.1, _MAMBAOUT),  # noqa: E501
    OfficialCheckpoint('mambaout_base.pth', _GH_MAMBAOUT.format('mambaout_base.pth'), 'MambaOut', 'base', 84.2, _MAMBAOUT),  # noqa: E501
    # HRVMamba-N/T ImageNet files are HRVmamba_se_lpu models (not built here); names as
    # upstream's configs write them.
    OfficialCheckpoint('hrvmamba_small_best.pth', _DRIVE.format('1Gxo0Pxg2D7x3dU0P2AZ2YGEFS-7XMxIX'), 'HRVMamba', 'small', 81.3, _HRVMAMBA),  # noqa: E501
    OfficialCheckpoint('hrvmamba_base_best.pth', _DRIVE.format('1jbXjvCBdjgraeEaJrDjD2wStpxJtCEuy'), 'HRVMamba', 'base', 84.2, _HRVMAMBA),  # noqa: E501
)
# fmt: on

# Build arguments that give a backbone exactly the modules of its ImageNet checkpoint
# (no per-output norms, no multi-scale adapter), so that verifying a file means
# "every tensor of the model came from the file".
IMAGENET_TRUNK: Dict[str, dict] = {
    'MLLA': dict(out_indices=()),      # norm{i} per output are new
    'VMamba': dict(out_indices=()),    # outnorm{i} per output are new
    'Vim': dict(with_adapter=False, out_indices=(-1,)),   # the adapter's fpn{i} are new
    'MambaOut': dict(out_indices=()),  # norm{i} per output are new
    'HRVMamba': dict(with_neck=True, with_out_norms=False),  # the classifier's neck, no outnorm
}


def needs_manual_download(url: str) -> bool:
    """Google Drive answers large files with a confirmation page, not the file."""
    return 'drive.google.com' in url


def by_file() -> Dict[str, OfficialCheckpoint]:
    return {c.file: c for c in OFFICIAL_CHECKPOINTS}


def select(names: Sequence[str],
           table: Sequence[OfficialCheckpoint] = OFFICIAL_CHECKPOINTS) -> List[OfficialCheckpoint]:
    """Rows named by file (``MLLA_T.pth``), stem (``MLLA_T``) or backbone (``vmamba``).

    Raises ``KeyError`` naming what matched nothing and listing the valid names.
    """
    chosen: List[OfficialCheckpoint] = []
    for name in names:
        key = name.lower()
        hits = [c for c in table
                if key in (c.file.lower(), c.file.lower().rsplit('.', 1)[0], c.backbone.lower())]
        if not hits:
            raise KeyError(f'{name!r} names no official checkpoint; give a file name, its stem or '
                           f'a backbone: {sorted({c.backbone for c in table})} / '
                           f'{[c.file for c in table]}')
        chosen += [c for c in hits if c not in chosen]
    return chosen
