# Source of notebooks/11_text2img.ipynb (build with `python notebooks/_build.py`).

# %% [markdown]
# # 11 · Text -> portrait -> 3D head: a small diffusion model
#
# The paper's second application (Fig. 7b): generate a portrait from text with a diffusion model, lift it to 3D,
# animate it with Avat3r. Stable Diffusion weights cannot be downloaded here, so the project trains its own small
# text-conditioned model on SynthHeads portraits (`avat3r.text2img`, docs/TEXT2IMG.md), built from `diffusers`
# parts: a pixel-space `UNet2DConditionModel` (64x64, 8.8 M parameters), a prompt encoder over a closed vocabulary,
# a DDPM training schedule and the DPM-Solver++ sampler, wrapped as a `DiffusionPipeline`.
#
# 1. the **noise schedule** (forward process) on a training portrait;
# 2. the **prompt encoder**: which words it understands;
# 3. the **denoising steps** as images (the clean image the model predicts after each step);
# 4. **classifier-free guidance** and **prompt attributes**;
# 5. portrait -> **Avat3r** (one view, V = 1) -> a rendered, animated head.
#
# It uses the shipped weights (`weights/text2img/`): a first, short training run (632 steps), whose portraits are
# noisy and often miss colours (see docs/TEXT2IMG.md for what it does and does not do). About a minute on 2 cores.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from avat3r.text2img.data import build_portraits
from avat3r.text2img.hub import load_portrait_pipeline
from avat3r.text2img.pipeline import to_images, to_model

torch.set_num_threads(2)
plt.rcParams["figure.dpi"] = 80
pipe = load_portrait_pipeline()
print(pipe.unet.config.block_out_channels, f"{sum(p.numel() for p in pipe.unet.parameters()) / 1e6:.1f} M UNet parameters")


def show(images, titles=None, size=2.0):
    fig, ax = plt.subplots(1, len(images), figsize=(size * len(images), size))
    for i, a in enumerate(np.atleast_1d(ax)):
        a.imshow(np.clip(images[i], 0, 1)); a.axis("off")
        a.set_title(titles[i] if titles else "", fontsize=8)
    plt.show()

# %% [markdown]
# ## 1 · The noise schedule
# Training adds Gaussian noise to a portrait x0: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, with the cosine
# schedule's abar_t (Nichol & Dhariwal 2021). The model learns to predict eps from x_t, t and the prompt. Note how
# small abar gets near t = 1000 (2e-9): the sampler clips its estimate of x0 to [-1, 1] there (dynamic
# thresholding), or the division by sqrt(abar) turns small errors into noise.

# %%
data = build_portraits([900_001], per_identity=1, size=64, log=None)  # a held-out SynthHeads identity
x0 = to_model(torch.from_numpy(data["images"]).float() / 255)
abar = pipe.scheduler.alphas_cumprod
ts = [0, 100, 250, 400, 600, 800, 999]
g = torch.Generator().manual_seed(0)
eps = torch.randn(x0.shape, generator=g)
noisy = [to_images(abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps)[0] for t in ts]
show(noisy, [f"t={t}, abar={float(abar[t]):.2g}" for t in ts])
plt.figure(figsize=(4, 2.5)); plt.semilogy(abar.numpy()); plt.xlabel("t"); plt.ylabel("abar_t"); plt.show()

# %% [markdown]
# ## 2 · The prompt encoder
# A closed vocabulary (the words the captions use, plus synonyms); filler words are dropped and unknown words are
# reported, never silently used. The encoder (token embedding + 2 transformer layers) was trained with the UNet.

# %%
prompt = "a portrait of a person with long blonde hair, spectacles and a unicorn horn, smiling"
ids, unknown = pipe.text_encoder.tokenize([prompt])
print("understood:", pipe.vocab.understood(prompt))
print("not understood:", unknown[0])
print("token ids:", ids[0].tolist())

# %% [markdown]
# ## 3 · Denoising, step by step
# 12 DPM-Solver++ steps from pure noise; each image is the clean portrait the model predicts at that step.

# %%
out = pipe("long blond hair, glasses, smiling", seed=1, steps=12, return_steps=True)
show([np.clip(s[0], 0, 1) for s in out.steps[::2]] + [out.images[0]],
     [f"step {i + 1}" for i in range(0, 12, 2)] + ["result"])

# %% [markdown]
# ## 4 · Classifier-free guidance and prompt attributes
# The model saw 15 % of its training captions dropped, so it also predicts the noise with no prompt; sampling
# mixes the two: eps = eps(empty) + w (eps(prompt) - eps(empty)). w = 1 is the plain conditional model; larger w
# follows the prompt more (and saturates colours).

# %%
imgs = [pipe("bald, beard, glasses", seed=2, steps=12, guidance=w).images[0] for w in (0.0, 1.0, 3.0, 5.0)]
show(imgs, ["w = 0 (no prompt)", "w = 1", "w = 3 (default)", "w = 5"])
prompts = ["short black hair", "long blond hair", "hat, sunglasses", "grey hair, facing left"]
show(pipe(prompts, seed=3, steps=12).images, prompts)

# %% [markdown]
# ## 5 · Portrait -> Avat3r
# Our portraits come with the camera they were trained with, so the portrait is one posed view (V = 1) for Avat3r,
# with a mask from the plain background. (When the single-image lifting route is installed, it replaces this step
# with GAN inversion -> 4 views.) `avat3r generate --prompt "..." -o DIR` runs the whole route.

# %%
from avat3r.pipeline import load_pipeline
from avat3r.text2img.route import portrait_capture, text_portrait

avatar_pipe = load_pipeline()
portrait = text_portrait("long brown hair, smiling", seed=0, steps=12)
cap, report = portrait_capture(portrait, avatar_pipe.image_size)
print("\n".join(report))
avatar = avatar_pipe.reconstruct(cap, source="capture")
frames = [avatar.render((az, 5.0), expr, size=128) / 255.0 for az, expr in [(0, None), (30, None), (0, "smile"), (0, "surprise")]]
show([cap.images[0], cap.masks[0][..., None].repeat(3, -1)] + frames,
     ["portrait (input)", "mask", "avatar, front", "azimuth 30", "smile", "surprise"])
