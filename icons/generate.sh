#!/usr/bin/env bash
# Draws the app mark (a heartbeat line over a dark tile) and writes every size Tauri wants.
# Needs ImageMagick 6 or 7 (`convert`/`magick`). Run from anywhere; writes next to itself.
set -euo pipefail
cd "$(dirname "$0")"
im=convert
command -v magick >/dev/null 2>&1 && im=magick

src=$(mktemp --suffix=.png)
trap 'rm -f "$src"' EXIT

# 1024 px master: rounded tile with a soft vertical gradient, a heartbeat polyline and a dot.
"$im" -size 1024x1024 xc:none \
  \( -size 1024x1024 gradient:'#2a3350-#12151f' \) \
  \( -size 1024x1024 xc:black -fill white -draw 'roundrectangle 48,48 975,975 200,200' \) \
  -delete 0 -alpha off -compose CopyOpacity -composite \
  -compose Over \
  -fill none -stroke '#3ddc97' -strokewidth 64 \
  -draw 'stroke-linejoin round stroke-linecap round polyline 190,560 380,560 460,360 560,720 650,470 700,560 834,560' \
  -stroke none -fill '#e8ecf7' -draw 'circle 834,560 834,500' \
  "$src"

# The hicolor sizes desktops ask for (menus 16–48, launchers and software centres 64–512).
for size in 16 24 32 48 64 256; do
  "$im" "$src" -resize ${size}x${size} -strip -depth 8 PNG32:${size}x${size}.png
done
"$im" "$src" -resize 128x128 -strip -depth 8 PNG32:128x128.png
"$im" "$src" -resize 256x256 -strip -depth 8 PNG32:128x128@2x.png
"$im" "$src" -resize 512x512 -strip -depth 8 PNG32:icon.png
