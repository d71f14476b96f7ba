#!/usr/bin/env bash
# The evaluations and decode benchmarks recorded in bench/RESULTS.md, by section.
# Usage: bench/evaluations.sh SECTION DEVICE TIDAL_COMMAND...
#   SECTION: bench | ppl | needle | coherence      DEVICE: cpu | cuda
#   TIDAL_COMMAND: how to run the tidal CLI, e.g. `dotnet run -c Release --project src/Tidal.Cli --`
# Every run uses the bundled tidal-tiny (models/tidal-tiny) unless it names a random-weight shape.
set -euo pipefail
section=$1 device=$2; shift 2
tidal=("$@")
model=(--model models/tidal-tiny --device "$device")
case "$section" in
  bench)
    "${tidal[@]}" bench "${model[@]}" --contexts 1024,2048,4096,7936 --steps 16 --budget 256 ;;
  ppl)
    common=(eval ppl "${model[@]}" --length 1024 --prefix 256 --windows 2)
    "${tidal[@]}" "${common[@]}" --policies full,tidal,quest --budgets 64,256,1024
    "${tidal[@]}" "${common[@]}" --policies tidal --budgets 64,256 --select-by kvhead
    "${tidal[@]}" "${common[@]}" --policies tidal --budgets 64,256 --correction-interval 32
    "${tidal[@]}" "${common[@]}" --policies tidal --budgets 64,256 --select-by kvhead --correction-interval 32 ;;
  needle)
    for context in 1024 2048 4096 8000; do   # one context per run, so each table is printed as soon as it is done
      common=(eval needle "${model[@]}" --contexts "$context" --depths 3 --trials 1)
      "${tidal[@]}" "${common[@]}" --policies full,tidal,quest --budgets 32,128,512
      "${tidal[@]}" "${common[@]}" --policies tidal --budgets 32,128,512 --select-by kvhead
    done ;;
  coherence)
    "${tidal[@]}" eval coherence "${model[@]}" --length 1024 --steps 8 --budget 128 ;;
  *) echo "unknown section $section" >&2; exit 2 ;;
esac
