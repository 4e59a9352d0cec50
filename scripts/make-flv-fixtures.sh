#!/usr/bin/env bash
# Makes the FLV fixtures in tests/fixtures/flv/ with ffmpeg (lavfi test sources, no input files).
# They are committed; rerun this only to change them. Needs: ffmpeg with libx264.
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/flv"
mkdir -p "$out"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
common=(-fflags +bitexact -flags +bitexact -map_metadata -1)
# An OBS-like stream recording: H.264 + AAC, big enough that its first 500 KiB are a strict prefix.
ff -f lavfi -i "testsrc2=size=320x240:rate=25" -f lavfi -i "sine=frequency=440:sample_rate=44100" \
   -t 8 -c:v libx264 -preset ultrafast -g 25 -b:v 1200k -c:a aac -b:a 96k "${common[@]}" "$out/stream-av-1.flv"
ff -f lavfi -i "mandelbrot=size=320x240:rate=25" -f lavfi -i "sine=frequency=660:sample_rate=44100" \
   -t 6 -c:v libx264 -preset ultrafast -g 25 -b:v 900k -c:a aac -b:a 96k "${common[@]}" "$out/stream-av-2.flv"
ff -f lavfi -i "smptebars=size=320x240:rate=25" -f lavfi -i "sine=frequency=220:sample_rate=44100" \
   -t 3 -c:v libx264 -preset ultrafast -g 25 -b:v 400k -c:a aac -b:a 64k "${common[@]}" "$out/short-av.flv"
# Video only (Sorenson H.263, ffmpeg's default FLV codec) and audio only (MP3 if available, else AAC).
ff -f lavfi -i "testsrc=size=320x240:rate=25" -t 4 -c:v flv1 -b:v 500k -an "${common[@]}" "$out/video-only.flv"
acodec=aac; ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libmp3lame && acodec=libmp3lame
ff -f lavfi -i "sine=frequency=880:sample_rate=44100" -t 5 -c:a "$acodec" -b:a 128k -vn "${common[@]}" "$out/audio-only.flv"
ls -l "$out"
