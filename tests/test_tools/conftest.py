import pytest


@pytest.fixture(scope='session')
def demo_coco(tmp_path_factory):
    from mlla_mm.datasets.demo_data import generate_coco_instance
    root = str(tmp_path_factory.mktemp('demo_coco'))
    generate_coco_instance(root, num_train=8, num_val=4, image_size=(160, 128),
                           object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_ade20k(tmp_path_factory):
    from mlla_mm.datasets.demo_data import generate_ade20k_semantic
    root = str(tmp_path_factory.mktemp('demo_ade20k'))
    generate_ade20k_semantic(root, num_train=6, num_val=3, image_size=(160, 128),
                             object_size=(24, 60), seed=1)
    return root


@pytest.fixture(scope='session')
def demo_isic(tmp_path_factory):
    from mlla_mm.datasets.demo_medseg import generate_isic_lesions
    root = str(tmp_path_factory.mktemp('demo_isic'))
    generate_isic_lesions(root, num_train=4, num_val=2, image_size=(72, 56), seed=1)
    return root
