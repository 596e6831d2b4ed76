"""`python tools/train.py configs/mask_rcnn_mlla_t.py` without COCO in data/coco: exit status
1 and one message naming data/coco/, no traceback (the message: tests/test_datasets/
test_required_paths.py)."""
import os.path as osp

from tool_runner import PY, ROOT, run

COCO = osp.join(ROOT, 'configs', 'mask_rcnn_mlla_t.py')


def test_train_py_command_line_has_no_traceback(tmp_path):
    """As a newcomer runs it, in a folder without data/coco: exit status 1, the message,
    no traceback, nothing written."""
    code, out = run([PY, osp.join(ROOT, 'tools', 'train.py'), COCO], cwd=tmp_path)
    assert code == 1, out
    assert 'Traceback' not in out and 'data/coco/: no such folder' in out, out
    assert list(tmp_path.iterdir()) == [], 'no work_dirs/: nothing was built'
