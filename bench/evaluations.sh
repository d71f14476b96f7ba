#!/usr/bin/env bash
# The evaluations and decode benchmarks recorded in bench/RESULTS.md, by section; figures go to bench/plots/.
# Usage: bench/evaluations.sh SECTION DEVICE TIDAL_COMMAND...
#   SECTION: bench | bench-8b | ppl | needle | coherence      DEVICE: cpu | cuda
#   TIDAL_COMMAND: how to run the tidal CLI, e.g. `dotnet run -c Release --project src/Tidal.Cli --`
# Every run uses the bundled tidal-tiny (models/tidal-tiny) unless it names a random-weight shape.
set -euo pipefail
section=$1 device=$2; shift 2
tidal=("$@")
model=(--model models/tidal-tiny --device "$device")
# Accuracy runs keep F16 KV caches on both devices, so that a CPU run reproduces a CUDA run's numbers to the bit (the
# CPU's default, F32 caches, moves sparse selections near ties and with them the last digits).
scored=("${model[@]}" --kv-cache f16)
plots=${PLOTS:-bench/plots}
mkdir -p "$plots"
case "$section" in
  bench)
    "${tidal[@]}" bench "${model[@]}" --contexts 1024,2048,4096,7936 --steps 16 --budget 256 --plot "$plots/bench-tiny-$device.png" ;;
  bench-8b)
    "${tidal[@]}" bench --shape llama-3-8b --device "$device" --contexts 8192,32768,131072 --steps 16 --budget 2048 --plot "$plots/bench-llama-3-8b-$device.png" ;;
  ppl)
    common=(eval ppl "${scored[@]}" --length 1024 --prefix 256 --windows 2)
    "${tidal[@]}" "${common[@]}" --policies full,tidal,quest --budgets 64,128,256,512,1024 --plot "$plots/ppl-qhead.png"
    "${tidal[@]}" "${common[@]}" --policies full,tidal --budgets 64,128,256,512 --select-by kvhead --plot "$plots/ppl-kvhead.png"
    "${tidal[@]}" "${common[@]}" --policies full,tidal --budgets 64,128,256,512 --correction-interval 32 --plot "$plots/ppl-qhead-correction.png"
    "${tidal[@]}" "${common[@]}" --policies full,tidal --budgets 64,128,256,512 --select-by kvhead --correction-interval 32 --plot "$plots/ppl-kvhead-correction.png" ;;
  needle)
    common=(eval needle "${scored[@]}" --contexts 1024,2048,4096,8000 --depths "${DEPTHS:-11}" --trials "${TRIALS:-4}")
    "${tidal[@]}" "${common[@]}" --policies full,tidal,quest --budgets 32,128,512 --plot "$plots/needle-qhead.png"
    "${tidal[@]}" "${common[@]}" --policies tidal --budgets 32,128,512 --select-by kvhead --plot "$plots/needle-kvhead.png" ;;
  coherence)
    "${tidal[@]}" eval coherence "${model[@]}" --length 1024 --steps 8 --budget 128 --plot "$plots/coherence.png" ;;
  *) echo "unknown section $section" >&2; exit 2 ;;
esac
