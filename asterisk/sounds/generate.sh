#!/bin/sh
# Regenerate the default survey prompts from prompts.txt with espeak-ng + sox.
# Output: <lang>/<file>.wav, 8 kHz mono signed 16-bit PCM WAV (Asterisk's format_wav plays it as is).
# Install: copy en/ and pl/ to <astdatadir>/sounds/qmon/ (e.g. /var/lib/asterisk/sounds/qmon/en/...),
# which matches the default prompt_path "qmon/{lang}/{name}". Sites may record their own voice instead.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' prompts.txt | grep -v '^$' | while IFS='|' read -r lang name text; do
    mkdir -p "$lang"
    # -s 150: a little slower than default, easier on the phone; fixed voice = reproducible output.
    espeak-ng -v "$lang" -s 150 -w "$tmp/raw.wav" "$text"
    # Resample to 8 kHz mono 16-bit, normalise to -3 dBFS so prompts are equally loud; no dither:
    # dither adds random noise, which would make the output differ from run to run.
    sox "$tmp/raw.wav" -D -r 8000 -c 1 -b 16 -e signed-integer "$lang/$name.wav" norm -3
    echo "$lang/$name.wav"
done
