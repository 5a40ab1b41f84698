#!/bin/sh
# Regenerate the default survey prompts from prompts.txt with espeak-ng + sox (Debian: apt-get install espeak-ng sox).
# Output: <lang>/<file>.wav, 8 kHz mono signed 16-bit PCM WAV (Asterisk's format_wav plays it as is), and
# durations.json: every prompt's length in seconds, which the survey's time budget is computed from
# (budget.py; docs/deploy.md "How long a survey may take"), and its identical copy ../../monitor/survey/durations.json
# that the qmon package ships (an installed qmon has no asterisk/ directory; a test fails if the two differ).
# Output is byte-for-byte reproducible with the same espeak-ng and sox (checked with espeak-ng 1.51, sox 14.4.2).
# Install: copy the language directories to <astdatadir>/sounds/qmon/ (e.g. /var/lib/asterisk/sounds/qmon/en/...),
# which matches the default prompt_path "qmon/{lang}/{name}". Sites may record their own voice instead: then
# measure them (`./generate.sh --durations-only DIR`, DIR holding <lang>/<file>.wav: writes DIR/durations.json
# only) and give that file to budget.py --durations and to qmon's survey.durations_file.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
copy="$here/../../monitor/survey/durations.json"
if [ "${1:-}" = "--durations-only" ] && [ -n "${2:-}" ]; then
    cd "$2"
    copy=""
else
    cd "$here"
fi
if [ "${1:-}" != "--durations-only" ]; then
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
fi
# durations.json: {"<lang>": {"<file>": seconds}}, seconds = samples / rate, 3 decimals, sorted keys.
for f in */*.wav; do
    printf '%s %s %s\n' "${f%%/*}" "$(basename "$f" .wav)" "$(soxi -s "$f") $(soxi -r "$f")"
done | sort | awk '
    BEGIN { printf "{" }
    { if ($1 != lang) { if (lang != "") printf "\n  },"; printf "\n  \"%s\": {", $1; lang = $1; sep = "" }
      printf "%s\n    \"%s\": %.3f", sep, $2, $3 / $4; sep = "," }
    END { printf "\n  }\n}\n" }' > durations.json
echo durations.json
if [ -n "$copy" ]; then
    cp durations.json "$copy"
    echo "$copy"
fi
