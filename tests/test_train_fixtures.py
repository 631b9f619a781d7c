"Small, fast inputs for the training tests: a 3-class toy spectrogram folder and an untrained tiny VQ-VAE (no tests here)."
import json
from pathlib import Path
import numpy as np
from PIL import Image


def make_data(root, n_per_class:int=8, size:int=32) -> Path:
    "Write `root/<class>/<subject>_<n>.png`: three classes of sinusoidal 'Doppler tracks' with noise."
    root = Path(root); rng = np.random.default_rng(0); t = np.arange(size)
    for ci, c in enumerate(['drone', 'run', 'walk']):
        (root/c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            a = np.zeros((size, size, 3), np.uint8)
            f = (np.sin(t / (2 + 2*ci) + rng.normal()) * size * (0.1 + 0.1*ci) + size/2).astype(int).clip(0, size - 1)
            a[f, t, 0] = 255; a[size - 1 - f, t, 2] = 200
            a = (a + rng.integers(0, 30, a.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(a).save(root/c/f's{i % 2}_{i}.png')
    return root


def make_vqvae(path, image_size:int=32, channels:int=3) -> Path:
    "Save an untrained `ci`-preset VQ-VAE folder (config, weights, vq_config.json) with scaling_factor 1."
    import torch
    from mdaug.vqvae import make_config, build_vqvae
    cfg = make_config('ci', image_size=image_size, channels=channels)
    torch.manual_seed(0)
    vq = build_vqvae(cfg)
    vq.save_pretrained(path, safe_serialization=True)
    (Path(path)/'vq_config.json').write_text(json.dumps(cfg.to_dict()))
    return Path(path)


def make_model(path, classes=('drone', 'run', 'walk'), image_size:int=32, channels:int=3) -> Path:
    "Save an untrained `ci`-size class-conditional model as an `MDaugPipeline` folder (random weights: for mechanics, not pictures)."
    import torch
    from mdaug.train import make_settings, make_scheduler
    from mdaug.unet import build_unet
    from mdaug.pipeline import MDaugPipeline
    from diffusers import VQModel
    vq = VQModel.from_pretrained(make_vqvae(Path(path).parent/(Path(path).name + '_vq'), image_size, channels))
    torch.manual_seed(1)
    unet = build_unet(image_size // 4, vq.config.latent_channels, num_classes=len(classes) if classes else None, preset='ci')
    MDaugPipeline(unet, vq, make_scheduler(make_settings('ci')), list(classes) if classes else None).save_pretrained(path)
    return Path(path)
