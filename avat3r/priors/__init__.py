"""Position priors (the paper's I^pos, I^conf, eq. 2) and feature priors (I^feat, eq. 3).

- ``base``: the PositionPrior / FeatureExtractor protocols, ``PriorOutput`` (torch tensors on the prior's device)
- ``registry``: the one table of position priors by name (``build_prior``, ``serving_prior``) and the rules that
  tie a checkpoint to the prior of its training data
- ``visual_hull``: the weight-free prior from masks and cameras
- ``dust3r/``: DUSt3R (official 512 DPT weights), pairwise inference, known-camera and pose-free alignment
- ``sapiens``: Sapiens pretrain feature maps (0.3b .. 2b; .pth or TorchScript)
- ``cache``: precomputed priors/features for training (supp. C)
- ``checkpoints``: safe weight loading (safetensors, restricted unpickler) and weight lookup

Nothing heavy is imported here; see docs/PRIORS.md.
"""
