# VM-UNet + MHS (MHS-VM) for binary segmentation: the VMUNet backbone (encoder, decoder with
# additive skips, x4 expansion; pads odd sizes to /32 itself) and a 1x1 sigmoid classifier
# trained with BCE + Dice (upstream BceDiceLoss(wb=1, wd=1)), thresholded at 0.5.
# Images reach the network as [0, 255] floats (MinMaxNormalize in the pipeline), as upstream.
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[0.0, 0.0, 0.0],
    std=[1.0, 1.0, 1.0],
    bgr_to_rgb=True,
    size_divisor=32,   # training batches (the backbone pads odd test sizes itself)
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='VMUNetSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='VMUNet',
        arch='4h',
        sra_threshold=0.0,
        drop_path_rate=0.2,
        out_indices=(4, )),
    decode_head=dict(
        type='VMUNetHead',
        in_channels=24,
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        loss_decode=[
            dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0,
                 loss_name='loss_bce'),
            dict(type='BinaryDiceLoss', smooth=1.0, loss_weight=1.0),
        ]),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
