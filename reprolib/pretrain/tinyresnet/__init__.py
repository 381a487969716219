"""TinyResNet: the miniature world's stand-in for the ImageNet ResNet-50 that CMFT's streams start from.

CMFT (section 4.2) initialises both TSM streams from ImageNet. The embedded profile runs the
same architecture at base width 16 (``resnet50-w16``), for which no ImageNet weights exist;
trained from scratch within the embedded budget those streams barely leave chance (mAP 3.7 on
HITSZ-VCM's miniature after 320 steps). ``python -m reprolib tinyresnet train`` gives them what
ImageNet gives the paper's streams: supervised classification pretraining on RGB photographs
that share no identity, camera or seed with the re-identification data. Here the photographs
are TinyCLIP's pretraining identities (:mod:`reprolib.pretrain.tinyclip.data`: their own seed space and
cameras, **visible frames only**, like ImageNet), the classes are those identities, and the
weights ship as ``reprolib/models/weights/tinyresnet.pt`` in torchvision's parameter names, so
they load through the very code that loads ``resnet50-0676ba61.pth``
(``model.backbone.pretrained: tinyresnet``, SHA-256 verified against ``tinyresnet.json``).

Modules: :mod:`.train` (the classification pretraining), :mod:`.evaluate` (held-out retrieval
per modality), :mod:`.cli` (``train`` / ``eval``).
"""
from .evaluate import evaluate_tinyresnet
from .train import TrainConfig, train_tinyresnet

__all__ = ["TrainConfig", "evaluate_tinyresnet", "train_tinyresnet"]
