"""tools/check_dataset.py on the generated datasets and on copies with one sample of each
kind of bad data (tests/bad_data.py): every problem is named with its file."""
import importlib.util
import json
import os.path as osp

import pytest

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_mlla_demo.py')
SEG = osp.join(ROOT, 'configs', 'demo', 'upernet_mlla_demo.py')


def _check_dataset(argv, capsys):
    spec = importlib.util.spec_from_file_location('check_dataset',
                                                  osp.join(ROOT, 'tools', 'check_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(argv)
    return code, capsys.readouterr().out


def test_check_dataset_names_every_problem(demo_coco, demo_ade20k, bad_coco, bad_ade20k,
                                           tmp_path, capsys):
    code, out = _check_dataset([DET, '--data-root', demo_coco, '--workers', '1'], capsys)
    assert code == 0 and '0 error(s), 0 warning(s): OK' in out, out
    code, out = _check_dataset([SEG, '--data-root', demo_ade20k, '--workers', '1'], capsys)
    assert code == 0, out

    root, broken = bad_coco
    report = str(tmp_path / 'coco.json')
    code, out = _check_dataset([DET, '--data-root', root, '--out', report], capsys)
    assert code == 1 and 'FAILED' in out
    assert '| train | error | missing file | 1 |' in out, 'the summary table counts kinds'
    with open(report) as f:
        problems = {(p['kind'], osp.basename(p['file']), p['level'])
                    for split in json.load(f) for p in split['problems']}
    expected = {('undecodable', broken['truncated JPEG'], 'error'),
                ('missing file', broken['missing file'], 'error'),
                ('grayscale image', broken['grayscale image'], 'warning'),
                ('degenerate polygon', broken['degenerate polygon'], 'error'),
                ('no annotations', broken['no annotations'], 'warning'),
                ('unknown category', broken['unknown category'], 'error')}
    assert problems == expected
    assert 'image file is truncated' in out and 'has 2 point(s)' in out

    root, broken = bad_ade20k
    code, out = _check_dataset([SEG, '--data-root', root], capsys)
    assert code == 1
    label_map = osp.join(root, 'annotations', 'training', broken['label out of range'])
    assert f'label out of range: {label_map}' in out
    assert 'raw values [200]' in out
