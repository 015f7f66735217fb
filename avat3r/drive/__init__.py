"""Driving an avatar with a person's video (issue 19): per frame, dlib's 68 landmarks -> head pose (the front
end's PnP) -> expression features with the pose removed -> minus the person's neutral (first frames) -> a small
regressor trained on SynthHeads -> the loaded model's expression code, plus gaze from the irises against
face-fixed eyeballs; One-Euro smoothing over time.

Modules: ``features`` (landmarks -> pose + pose-free features), ``regressor`` (the shipped MLP and its weights),
``gaze`` (iris against the eyeball placed by the head pose), ``smoothing`` (One-Euro filter), ``video`` (the
per-frame driver and its bounds), ``synth`` (training data from SynthHeads with known codes: rig-carried landmarks),
``rendered`` (training data from SynthHeads renders: dlib's landmarks on turned heads) and ``train`` (fits the
regressor and the gaze gains on CPU). See docs/DRIVE.md.
"""
