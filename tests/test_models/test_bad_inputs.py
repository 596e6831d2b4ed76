"""Inputs a backbone cannot run on get an error naming the problem and the fix, not a
``reshape`` / conv error from deep inside (issue 11, item 6)."""
import pytest
import torch

from mlla_mm.models.backbones.mlla import MLLA
from mlla_mm.models.backbones.vim import Vim
from mlla_mm.models.backbones.vmamba import VMamba


def _backbones():
    return {
        'MLLA': MLLA(arch=dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4])),
        'VMamba': VMamba(arch=dict(embed_dims=16, depths=[1, 1, 1, 1])),
        'Vim': Vim(arch=dict(embed_dims=32, depth=2, d_state=4), pretrain_img_size=64,
                   out_indices=(0, 1, 1, 1)),
    }


@pytest.mark.parametrize('name', ['MLLA', 'VMamba'])
def test_empty_batch_is_named(name):
    model = _backbones()[name].eval()
    with pytest.raises(ValueError, match=rf'{name} got an empty batch \(0, 3, 64, 64\).*skip '
                                         'the forward pass'):
        model(torch.zeros(0, 3, 64, 64))


def test_vim_names_wrong_channels_and_the_fix():
    model = _backbones()['Vim'].eval()
    with pytest.raises(ValueError, match=r"Vim expects images of shape \(B, 3, H, W\), got "
                                         r"\(2, 1, 64, 64\).*color_type='color'.*in_channels=1"):
        model(torch.zeros(2, 1, 64, 64))
    with pytest.raises(ValueError, match=r'got \(3, 64, 64\)'):
        model(torch.zeros(3, 64, 64))
    assert len(model(torch.zeros(1, 3, 64, 64))) == 4  # the right input still runs
