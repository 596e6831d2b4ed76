# VM-UNet + MHS, 3 heads (C, X, S), ISIC 2018: the upstream recipe (PixDeep/MHS-VM be64b6f,
# configs/config_setting.py): from scratch, 256 x 256, batch 32 (1 GPU), 300 epochs, AdamW
# lr 1e-3 wd 1e-2, cosine T_max 50 per epoch, flips + rotation, BCE + Dice, Scan Route
# Attention t = 0.5 while training (upstream: 0.5 for ISIC18, 0.0 for ISIC17).
# Published: none in the repository for 3 heads (best_3h.pth is released without numbers;
# the paper's tables were not verified offline).
# Upstream's test.py evaluates with t = 0.4 whatever the training value: add
#   --cfg-options model.backbone.sra_threshold=0.4
# to tools/test.py to evaluate as upstream (the released files load directly:
#   python tools/test.py configs/vmunet_mhs_3h_isic18.py best_3h.pth ...).
# Differences from upstream: the best checkpoint is chosen by validation IoU (upstream: lowest
# validation loss; both pick on the test split), each rotation draws its own angle (upstream
# draws one angle when the transform is built), metrics on full-size masks (upstream: 256^2).
# Data: docs/mhs_vm.md, "ISIC data".
_base_ = [
    './_base_/models/vmunet_mhs.py',
    './_base_/datasets/isic.py',
    './_base_/schedules/isic_300e.py',
    './_base_/seg_runtime.py',
]
# the mmseg parts (segmentor, head, ISIC dataset, transforms) are imported on demand
custom_imports = dict(imports=['mlla_mm', 'mlla_mm.models.segmentors', 'mlla_mm.datasets.isic'],
                      allow_failed_imports=False)
data_root = 'data/isic2018'
model = dict(backbone=dict(arch='3h', sra_threshold=0.5))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
log_processor = dict(by_epoch=True)   # the runtime's is per iteration
