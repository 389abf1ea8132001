"""Encoder throughput (images/s by batch size) and JPEG decode time with and without draft.

    python benchmarks/encode.py [--models efficientnet-lite0 resnet50] [--device auto]
    python benchmarks/encode.py --smoke   # efficientnet-lite0, batches 1 and 2, 0.2 s each

resnet50 runs with random weights when its pretrained file is not in the torch cache (speed
does not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import platform
import time

import _support
import torch
from sample_images import camera_jpeg, source_photos

from imgsearch.encoding.decode import decode_image
from imgsearch.encoding.encoder import collate
from imgsearch.encoding.registry import get_encoder
from imgsearch.encoding.torch_models import build_torchvision
from imgsearch.errors import WeightsUnavailable


def encoder_for(name: str, device: str, backend: str):
    try:
        return get_encoder(name, device, backend=backend), "pretrained"
    except WeightsUnavailable:
        encoder = build_torchvision(name, device, random_init_seed=0)
        if backend == "onnx":
            from imgsearch.encoding.onnx_export import export

            encoder = export(encoder, f"bench-{name}-random-seed0")
        return encoder, "random weights"


def images_per_second(encoder, inputs, batch: int, seconds: float = 6.0) -> float:
    batch_inputs = collate(inputs[:batch])
    encoder.encode_batch(batch_inputs)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        encoder.encode_batch(batch_inputs)
        done += batch
    if encoder.device_type == "cuda":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def decode_ms(data: bytes, min_size: int | None, repeats: int) -> float:
    decode_image(data, min_size)
    start = time.perf_counter()
    for _ in range(repeats):
        decode_image(data, min_size)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "resnet50"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    parser.add_argument("--seconds", type=float, default=6.0)
    _support.add_arguments(parser)
    args = parser.parse_args()
    repeats = 10
    if args.smoke:
        args.models, args.batches, args.seconds, repeats = ["efficientnet-lite0"], [1, 2], 0.2, 2
    if args.home is not None:
        _support.home(args, "")  # the model cache

    photos = source_photos(not args.smoke)
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    for name in args.models:
        for backend in args.backends:
            encoder, weights = encoder_for(name, args.device, backend)
            inputs = [encoder.preprocess(photos[i % len(photos)]) for i in range(max(args.batches))]
            for batch in args.batches:
                rate = images_per_second(encoder, inputs, batch, args.seconds)
                print(
                    f"encode  {name:<20} {backend:<5} {encoder.device_type:<5} batch {batch:>3}: "
                    f"{rate:8.1f} images/s  ({weights})"
                )

    data = camera_jpeg(photos[0], seed=0)
    full = decode_ms(data, None, repeats)
    draft = decode_ms(data, 256, repeats)
    print(f"decode  3000x2000 JPEG q90: {full:.1f} ms full, {draft:.1f} ms with draft (x{full / draft:.1f})")
    prep = get_encoder("efficientnet-lite0", "cpu").preprocess
    loops = max(1, repeats // 2)
    start = time.perf_counter()
    for _ in range(loops):
        prep(decode_image(data).image)
    full_prep = (time.perf_counter() - start) / loops * 1000
    start = time.perf_counter()
    for _ in range(loops):
        prep(decode_image(data, 256).image)
    draft_prep = (time.perf_counter() - start) / loops * 1000
    print(
        f"decode + resize/crop to 224: {full_prep:.1f} ms full, {draft_prep:.1f} ms with draft "
        f"(x{full_prep / draft_prep:.1f})"
    )


if __name__ == "__main__":
    main()
