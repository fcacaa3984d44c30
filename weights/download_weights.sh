#!/usr/bin/env bash
# The AbC authors' released tuned heads and calibrators -> weights/mapper/*.pth, weights/calibrator/*.pth.
# Optional argument "backbones": also fetch the CLIP and DINO backbone weights into weights/pretrained/.
set -euo pipefail
cd "$(dirname "$0")/.."
wget -c https://www.cs.cmu.edu/~dataattribution/files/weights.tar.gz -O weights/weights.tar.gz
tar -xzf weights/weights.tar.gz -C weights/
rm weights/weights.tar.gz
if [ "${1:-}" = "backbones" ]; then
  mkdir -p weights/pretrained
  python -c "from huggingface_hub import hf_hub_download as d; import shutil; \
shutil.copy(d('timm/vit_base_patch32_clip_224.openai', 'open_clip_model.safetensors'), 'weights/pretrained/clip_vit_b_32_openai.safetensors'); \
shutil.copy(d('timm/vit_base_patch16_224.dino', 'model.safetensors'), 'weights/pretrained/dino_vitb16.safetensors')"
fi
ls -R weights/mapper weights/calibrator
