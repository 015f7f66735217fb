"""Driving an avatar with a person's video (issue 19): per frame, dlib's 68 landmarks -> head pose (the front
end's PnP) -> expression features with the pose removed -> minus the person's neutral (first frames) -> a small
regressor trained on SynthHeads -> the loaded model's expression code; One-Euro smoothing over time.

Modules: ``features`` (landmarks -> pose + pose-free features), ``regressor`` (the shipped MLP and its weights),
``smoothing`` (One-Euro filter), ``video`` (the per-frame driver and its bounds), ``synth`` (training data from
SynthHeads with known codes) and ``train`` (fits the regressor on CPU). See docs/DRIVE.md.
"""
