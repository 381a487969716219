"""Pretraining recipes of the miniature world's backbones (not model families): TinyCLIP
(:mod:`.tinyclip`, contrastive, the embedded CLIP) and TinyResNet (:mod:`.tinyresnet`, classification,
CMFT's ImageNet stand-in). Both run the one training loop of :mod:`.loop`; their weights ship in
``reprolib/models/weights/`` with a JSON record (SHA-256, command, seed, hardware).
"""
