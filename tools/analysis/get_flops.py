"""Parameters and FLOPs of a detector/segmentor config or of a backbone alone.

The selective scans (routed through a probe op while counting) and attention
(matmul / scaled_dot_product_attention) are counted; one multiply-add is one
FLOP, as in the papers (see mlla_mm/analysis/flops.py).

Examples::

    python tools/analysis/get_flops.py configs/mask_rcnn_mlla_t.py --shape 1280 800
    python tools/analysis/get_flops.py configs/upernet_vmamba_t.py --shape 512 2048
    python tools/analysis/get_flops.py configs/mask_rcnn_mlla_t.py --backbone-only
    python tools/analysis/get_flops.py MLLA-T --shape 224          # a backbone preset
    python tools/analysis/get_flops.py mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py
    python tools/analysis/get_flops.py --published                 # ours vs the papers
"""
import argparse
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

from mmengine.config import DictAction  # noqa: E402

from mlla_mm.analysis.backbone_cases import PRESETS  # noqa: E402
from mlla_mm.analysis.flops import (PUBLISHED, SCAN_CONVENTIONS,  # noqa: E402
                                    complexity_of_backbone, complexity_of_config,
                                    resolve_config_path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('target', nargs='?', help='config file, mmdet::/mmseg:: config, or '
                        f'backbone preset ({", ".join(PRESETS)})')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (or S for square); default 1280 800 for configs, '
                        '224 for presets')
    parser.add_argument('--backbone-only', action='store_true', help="count model.backbone")
    parser.add_argument('--size-divisor', type=int, default=32,
                        help='pad H, W to a multiple (configs only; <=0: no padding)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='config overrides')
    parser.add_argument('--compute-scans', action='store_true',
                        help='run the real scan kernels while tracing (slow; same count)')
    parser.add_argument('--scan-convention', choices=SCAN_CONVENTIONS, default='mamba',
                        help="selective-scan FLOPs: 'mamba' = 9·B·L·D·N (VMamba's current "
                        "numbers), 'ref' = selective_scan_ref's einsums (older, smaller)")
    parser.add_argument('--published', action='store_true',
                        help='count every model with a published figure and compare')
    parser.add_argument('--only', nargs='+', default=None,
                        help='with --published: entries whose name contains one of these')
    parser.add_argument('--out', default=None, help='also write the comparison table here')
    return parser.parse_args(argv)


def count(target, shape, backbone_only=False, size_divisor=32, cfg_options=None,
          compute_scans=False, scan_convention='mamba'):
    """Count a backbone preset, a backbone config dict, or a config file."""
    if isinstance(target, dict):
        return complexity_of_backbone(target, shape or (224, ), None, compute_scans,
                                      scan_convention)
    if target in PRESETS:
        spec = PRESETS[target]
        return complexity_of_backbone(spec['cfg'], shape or (224, ), spec['scope'], compute_scans,
                                      scan_convention)
    path = resolve_config_path(target)
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)
    return complexity_of_config(path, shape or (1280, 800), backbone_only, size_divisor,
                                cfg_options, compute_scans, scan_convention)


def published_table(only=None):
    rows = ['| model | input | params (M) ours / published | GFLOPs ours / published | diff '
            '| scans counted |', '|---|---|---:|---:|---:|---:|']
    for entry in PUBLISHED:
        if only and not any(o.lower() in entry['name'].lower() for o in only):
            continue
        target = entry.get('config') or entry['backbone']
        shape = entry['shape']
        try:
            res = count(target, shape, scan_convention=entry.get('scan_convention', 'mamba'))
        except Exception as err:  # noqa: BLE001  (report and go on)
            rows.append(f"| {entry['name']} | {shape[0]}×{shape[1]} | – / {entry['params_m']} "
                        f"| – / {entry['gflops']} | not counted: {type(err).__name__}: "
                        f"{str(err)[:120]} | – |")
            print(f"{entry['name']}: {type(err).__name__}: {err}", file=sys.stderr)
            continue
        gflops = res['flops'] / 1e9
        diff = (gflops - entry['gflops']) / entry['gflops'] * 100
        digits = 2 if entry['gflops'] < 10 else 1
        rows.append(f"| {entry['name']} | {shape[0]}×{shape[1]} | {res['params'] / 1e6:.1f} / "
                    f"{entry['params_m']} | {gflops:.{digits}f} / {entry['gflops']} | {diff:+.1f}% "
                    f"| {res['scans']} |")
        print(rows[-1], flush=True)
    return '\n'.join(rows) + '\n'


def main(argv=None):
    args = parse_args(argv)
    if args.published:
        table = published_table(args.only)
        print(table)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(table)
        return
    if not args.target:
        raise SystemExit('give a config or a backbone preset, or --published.')
    res = count(args.target, args.shape, args.backbone_only, args.size_divisor, args.cfg_options,
                args.compute_scans, args.scan_convention)
    line = '=' * 40
    print(f'{line}\n{args.target}{" (backbone only)" if args.backbone_only else ""}\n'
          f'input shape: {tuple(res["input_shape"])}\n'
          f'params: {res["params"] / 1e6:.2f} M\nFLOPs: {res["flops"] / 1e9:.2f} G '
          f'(multiply-adds; {res["scans"]} selective scans counted)')
    print('by module: ' + ', '.join(f'{k} {v / 1e9:.2f} G' for k, v in res['by_module'].items()))
    print('by operator: ' + ', '.join(f'{k} {v / 1e9:.2f} G'
                                      for k, v in sorted(res['by_operator'].items(),
                                                         key=lambda kv: -kv[1])))
    if res['uncounted_ops']:
        print('not counted (element-wise / no handle): ' + ', '.join(
            f'{k}×{v}' for k, v in sorted(res['uncounted_ops'].items())))
    print(line)


if __name__ == '__main__':
    main()
