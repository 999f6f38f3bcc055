#!/usr/bin/env bash
# Draws the app mark (a heartbeat line over a dark tile) once, as a 1024 px master, and writes
# every icon the platforms want from it: the PNG sizes (Linux's hicolor theme, Tauri's window and
# tray icon), icon.ico (Windows: the executable's resource, the installer, the taskbar) and
# icon.icns (macOS: the .app bundle). The files are committed; run this again after changing the
# drawing. Needs ImageMagick 6 or 7 (`convert`/`magick`), which writes the .ico itself; the .icns
# is a plain container of PNGs (below), written here with printf. Run from anywhere; writes next
# to itself.
set -euo pipefail
cd "$(dirname "$0")"
im=convert
command -v magick >/dev/null 2>&1 && im=magick

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src=$work/master.png

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

# png SIDE OUT: the master scaled to SIDE px, 8-bit RGBA, without metadata (so a rerun writes
# the same bytes).
png() {
  "$im" "$src" -resize "$1x$1" -strip -depth 8 -define png:exclude-chunks=date,time "PNG32:$2"
}

# The hicolor sizes desktops ask for (menus 16–48, launchers and software centres 64–512).
for size in 16 24 32 48 64 256; do
  png "$size" "${size}x${size}.png"
done
png 128 128x128.png
png 256 128x128@2x.png
png 512 icon.png

# Windows: one .ico with the sizes the shell picks from (16 small icons, 24 and 32 the taskbar,
# 48 and 64 Explorer's views, 256 large icons, stored as PNG).
for size in 16 24 32 48 64 128 256; do
  png "$size" "$work/ico-$size.png"
done
"$im" "$work"/ico-{16,24,32,48,64,128,256}.png icon.ico

# macOS: an .icns is "icns", its total length, then entries of a 4-character type, the entry's
# length (header included) and PNG bytes; every length is 32-bit big-endian. The types are the
# PNG ones Finder and the Dock read since 10.7: ic11/ic12 (16 and 32 @2x), ic07–ic09 (128, 256,
# 512), ic13/ic14 (128 and 256 @2x), ic10 (512 @2x = 1024).
be32() {
  local n=$1
  printf "\\x$(printf %02x $(((n >> 24) & 255)))\\x$(printf %02x $(((n >> 16) & 255)))"
  printf "\\x$(printf %02x $(((n >> 8) & 255)))\\x$(printf %02x $((n & 255)))"
}
body=$work/icns-body
: >"$body"
for entry in ic11:32 ic12:64 ic07:128 ic08:256 ic13:256 ic09:512 ic14:512 ic10:1024; do
  type=${entry%%:*}
  side=${entry##*:}
  png "$side" "$work/icns-$type.png"
  len=$(($(wc -c <"$work/icns-$type.png") + 8))
  { printf %s "$type"; be32 "$len"; cat "$work/icns-$type.png"; } >>"$body"
done
{ printf icns; be32 $(($(wc -c <"$body") + 8)); cat "$body"; } >icon.icns
