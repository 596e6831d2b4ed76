"""Export a model to ONNX and check the file in onnxruntime.

    python tools/deployment/export_onnx.py CONFIG [CHECKPOINT] --shape H W --out FILE.onnx
        [--dynamic] [--backbone-only] [--openvino] [--cfg-options K=V ...]

What is exported: for a segmentor config (UperNet, ``EncoderDecoder``) the whole model's
logits at the input size; for a detector config (Mask R-CNN) the backbone + neck (RoI heads
and NMS are post-processing: export those with mmdeploy); ``--backbone-only`` the backbone.
Without CHECKPOINT the weights are as built. The scans become plain ONNX ops (an ONNX
``Scan`` over 64-step chunks): the file runs in onnxruntime without custom libraries.

After the export the file runs in onnxruntime on the same random input; the tool prints the
max relative difference to PyTorch, the file size and both run times, and exits 1 if the
difference is above 1e-4 (with ``--dynamic`` it is checked at a second size too). With
``--openvino`` the file also runs in OpenVINO and how it compares is printed (not a condition
of success). Exit 2: onnx/onnxruntime missing (``pip install mlla-mm[deploy]``).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
                        help='input height and width (batch 1, 3 channels)')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--dynamic', action='store_true',
                        help='leave batch, H and W free in the file and check it at a second '
                        'size too (today: scan-free backbones such as MambaOut only)')
    parser.add_argument('--backbone-only', action='store_true')
    parser.add_argument('--openvino', action='store_true',
                        help='also run the file in OpenVINO (CPU) and print how it compares')
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mlla_mm.deploy import onnx as deploy
    try:
        deploy.require_deploy()
    except ImportError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    import torch
    from mlla_mm.utils.inference import init_model

    model = init_model(args.config, args.checkpoint, device='cpu', cfg_options=args.cfg_options)
    module, what = deploy.exportable(model, backbone_only=args.backbone_only)
    torch.manual_seed(0)
    inputs = torch.randn(1, 3, *args.shape)
    print(f'exporting {what} at 1x3x{args.shape[0]}x{args.shape[1]}'
          f'{" (dynamic batch, H, W)" if args.dynamic else ""} to {args.out}')
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    try:
        export_s = deploy.export_onnx(module, inputs, args.out, dynamic=args.dynamic,
                                      opset=args.opset)
    except RuntimeError as error:
        if not args.dynamic:
            raise
        print(f'error: {error}', file=sys.stderr)
        return 1
    checks = [inputs]
    if args.dynamic:   # the file must also run at another size
        other = [max(16, s * 3 // 4 + 1) for s in args.shape]
        checks.append(torch.randn(1, 3, *other))
    try:
        results = deploy.check_onnxruntime(module, args.out, checks)
    except Exception as error:   # e.g. onnxruntime refuses a size the export specialized
        print(f'error: the ONNX file does not run in onnxruntime at '
              f'{"x".join(map(str, checks[-1].shape))}: {type(error).__name__}: '
              f'{str(error)[:500]}', file=sys.stderr)
        return 1
    check = max(results, key=lambda c: c.max_rel_diff)
    print(f'export: {export_s:.1f} s, file: {check.file_mb:.2f} MiB')
    print(f'outputs: {", ".join("x".join(map(str, s)) for s in check.shapes)}')
    print(f'onnxruntime vs PyTorch: max relative difference {check.max_rel_diff:.2e} '
          f'(tolerance {deploy.TOLERANCE:.0e})')
    print(f'forward: PyTorch {check.torch_ms:.1f} ms, onnxruntime {check.runtime_ms:.1f} ms')
    if not check.ok:
        print(f'error: the ONNX file does not match PyTorch (max relative difference '
              f'{check.max_rel_diff:.2e} > {deploy.TOLERANCE:.0e}); per output: '
              f'{", ".join(f"{d:.1e}" for d in check.rel_diffs)}', file=sys.stderr)
        return 1
    if args.openvino:   # reported, not a condition of success (docs/deploy.md "ONNX")
        try:
            vino = max(deploy.check_runtime(module, args.out, checks, 'openvino'),
                       key=lambda c: c.max_rel_diff)
            print(f'OpenVINO vs PyTorch: max relative difference {vino.max_rel_diff:.2e}; '
                  f'forward {vino.runtime_ms:.1f} ms')
        except Exception as error:
            print(f'OpenVINO: fails: {type(error).__name__}: {str(error)[:500]}')
    print('OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
