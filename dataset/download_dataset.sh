#!/usr/bin/env bash
# AbC images from the authors' Google Drive (needs `pip install gdown`); also mirrored on the Hugging Face hub
# as sywang/GenDataAttribution.
#   bash dataset/download_dataset.sh exemplar     # exemplar real images        -> dataset/exemplar/
#   bash dataset/download_dataset.sh testset      # synthesized test images     -> dataset/synth/
#   bash dataset/download_dataset.sh laion        # 1M LAION subset, PNG        -> dataset/laion_subset/
#   bash dataset/download_dataset.sh laion_jpeg   # 1M LAION subset, JPEG       -> dataset/laion_subset_jpeg/
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  testset)    id=1z7wDJLvBGoW77ijh9HZQPZ9w7tfViCm-; file=testset_synth.tar.gz ;;
  exemplar)   id=1UVYHxWM5D8Z7NWO9novYwHkwHKi7BsN0; file=exemplar.tar.gz ;;
  laion)      id=1W4TEkxFwUwmNm6gMzgm7Wu6lb848CM-q; file=laion_subset.tar.gz ;;
  laion_jpeg) id=1n5HdyAomip1deqD7FTUN0GnoZA1QlwqX; file=laion_subset_jpeg.tar ;;
  *) echo "usage: bash dataset/download_dataset.sh {exemplar|testset|laion|laion_jpeg}" >&2; exit 2 ;;
esac
gdown "https://drive.google.com/uc?id=$id" -O "dataset/$file"
tar -xf "dataset/$file" -C dataset/
rm "dataset/$file"
