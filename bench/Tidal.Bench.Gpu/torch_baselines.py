"""PyTorch baselines for `Tidal.Bench.Gpu gpu`'s GEMV and top-k rows: torch.mv (cuBLAS) on the Llama-3-8B MLP shapes
in fp16, and torch.topk over 32 x 128K float scores with k = 2048; mean of CUDA-event timings.
Usage: python3 bench/Tidal.Bench.Gpu/torch_baselines.py
"""
import torch
torch.manual_seed(0)
print(f"pytorch {torch.__version__} on {torch.cuda.get_device_name()}")
for rows, cols in ((14336, 4096), (4096, 14336)):
    w = torch.randn(rows, cols, device="cuda", dtype=torch.float16)
    x = torch.randn(cols, device="cuda", dtype=torch.float16)
    for _ in range(10): torch.mv(w, x)
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 500
    s.record()
    for _ in range(reps): torch.mv(w, x)
    e.record(); torch.cuda.synchronize()
    us = s.elapsed_time(e) * 1000 / reps
    print(f"torch.mv fp16 {rows}x{cols}: {us:8.1f} us {rows*cols*2/(us*1e3):8.0f} GB/s")
logits = torch.randn(32, 131072, device="cuda")
for _ in range(10): torch.topk(logits, 2048, dim=1)
torch.cuda.synchronize()
s.record()
for _ in range(200): torch.topk(logits, 2048, dim=1)
e.record(); torch.cuda.synchronize()
print(f"torch.topk 32x128K k=2048: {s.elapsed_time(e)*1000/200:8.1f} us")
