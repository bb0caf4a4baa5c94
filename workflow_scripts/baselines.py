"""Rules vqa_baseline, caption_baseline, nearest_caption_baseline → medvqa.data.baselines.write_baseline."""

from medvqa.data.baselines import write_baseline
from medvqa.io import setup_logging

setup_logging(snakemake.log[0])
inp = snakemake.input
caches = {}
if "images" in inp.keys():
    caches = {"train_cache": (inp.train_images, inp.train_image_ids), "split_cache": (inp.images, inp.image_ids),
              "image_size": snakemake.params.image_size}
write_baseline(snakemake.params.name, inp.train, inp.split, snakemake.output[0], **caches)
