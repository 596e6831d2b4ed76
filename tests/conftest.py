"""Test-wide settings, the split into unit and end-to-end tests, and the generated datasets
every test shares.

Without a GPU, Triton kernels run under Triton's interpreter; the variable must
be set before any kernel module is imported, hence here.

Every test under ``tests/e2e/`` (the tools run as a user runs them: fresh processes, training,
evaluation) is marked ``e2e``, as is by hand (``@pytest.mark.e2e``) a test elsewhere that starts
a Python process; ``make test-fast`` runs the others (``-m 'not e2e'``). A unit
test elsewhere that takes longer than ``UNIT_TEST_BUDGET_S`` is listed at the end of the run:
make it smaller, or move it to ``tests/e2e/`` (docs/contributing.md, "Tests").

Under pytest-xdist (``make test`` runs ``-n 2``) each worker gets its share of the cores for
torch (and for the tools it starts), and the tests of one ``tests/e2e/`` module stay on one
worker: they share the runs their module fixtures make (unit tests are dealt one by one).
"""
import importlib.util
import os
import os.path as osp

import pytest


def _shorten_openmp_spin():
    """Before torch loads libgomp, as ``import mlla_kernels`` does for the tools
    (mlla_kernels/openmp.py, loaded by path: the package itself imports torch)."""
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mlla_kernels', 'openmp.py')
    spec = importlib.util.spec_from_file_location('_tests_openmp', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.shorten_openmp_spin()


_shorten_openmp_spin()

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

if os.environ.get('PYTEST_XDIST_WORKER'):   # n workers share the cores: no oversubscription
    _workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))

E2E_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'e2e') + os.sep
UNIT_TEST_BUDGET_S = 10.0
_slow_unit_tests = []


def pytest_collection_modifyitems(config, items):
    for item in items:
        if str(item.path).startswith(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """One work unit per tests/e2e/ module (its tests share module fixtures), per test
    elsewhere. (xdist's own ``--dist loadgroup`` does not group under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class E2EModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split('::', 1)[0]
            return path if '/e2e/' in f'/{path}' else nodeid

    return E2EModulesTogether(config, log)


def pytest_runtest_logreport(report):
    if report.when == 'call' and report.duration > UNIT_TEST_BUDGET_S \
            and 'e2e' not in report.keywords:
        _slow_unit_tests.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter):
    if _slow_unit_tests:
        terminalreporter.section('unit tests over their time budget')
        terminalreporter.write_line(
            f'these tests are not marked e2e but took more than {UNIT_TEST_BUDGET_S:.0f} s '
            '(make test-fast must stay under 2 minutes): shrink them or move them to tests/e2e/')
        for duration, nodeid in sorted(_slow_unit_tests, reverse=True):
            terminalreporter.write_line(f'{duration:6.1f} s  {nodeid}')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope='module')
def one_torch_thread():
    """One torch thread for a module of tiny models: two OpenMP threads on a shared 2-core
    machine run far slower than one. Use with ``pytestmark =
    pytest.mark.usefixtures('one_torch_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiled_random_init():
    """Random initialisation tiled from a fixed pool during the test (tiled_init.py)."""
    from tiled_init import tiled_random_init as tiled
    with tiled():
        yield


@pytest.fixture(scope='session')
def demo_coco(tmp_path_factory):
    """COCO layout: 8 train / 4 val images at 160x128, the 4 demo shape classes."""
    from mlla_mm.datasets.demo_data import generate_coco_instance
    root = str(tmp_path_factory.mktemp('demo_coco'))
    generate_coco_instance(root, num_train=8, num_val=4, image_size=(160, 128),
                           object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_ade20k(tmp_path_factory):
    """ADE20K layout: 6 train / 3 val images at 160x128, 8 classes."""
    from mlla_mm.datasets.demo_data import generate_ade20k_semantic
    root = str(tmp_path_factory.mktemp('demo_ade20k'))
    generate_ade20k_semantic(root, num_train=6, num_val=3, image_size=(160, 128),
                             object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_isic(tmp_path_factory):
    """ISIC layout ({train,val}/{images,masks}): 4 train / 2 val lesion images at 72x56."""
    from mlla_mm.datasets.demo_medseg import generate_isic_lesions
    root = str(tmp_path_factory.mktemp('demo_isic'))
    generate_isic_lesions(root, num_train=4, num_val=2, image_size=(72, 56), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_coco_pose(tmp_path_factory):
    """COCO-keypoints layout (mmpose): 4 train / 2 val images at 160x128, 1-3 figures each,
    with the simulated person detections."""
    from mlla_mm.datasets.demo_pose import generate_coco_pose
    root = str(tmp_path_factory.mktemp('demo_coco_pose'))
    generate_coco_pose(root, num_train=4, num_val=2, image_size=(160, 128),
                       persons_per_image=(1, 3), person_height=(50, 120), seed=1)
    return root


@pytest.fixture(scope='session')
def bad_coco(demo_coco, tmp_path_factory):
    """A copy of demo_coco with one training image of each kind of bad data (bad_data.py)."""
    from bad_data import corrupt_coco
    root = str(tmp_path_factory.mktemp('bad') / 'coco')
    return root, corrupt_coco(demo_coco, root)


@pytest.fixture(scope='session')
def bad_ade20k(demo_ade20k, tmp_path_factory):
    """A copy of demo_ade20k with a label value beyond every class in one training map."""
    from bad_data import corrupt_ade20k
    root = str(tmp_path_factory.mktemp('bad') / 'ade20k')
    return root, corrupt_ade20k(demo_ade20k, root)
