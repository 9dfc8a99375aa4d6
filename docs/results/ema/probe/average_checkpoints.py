import sys
from safetensors import safe_open
from safetensors.torch import save_file
out, *ins = sys.argv[1:]
fs = [safe_open(p, 'pt') for p in ins]
meta = fs[-1].metadata()
t = {}
for k in fs[-1].keys():
    v = fs[-1].get_tensor(k)
    if k.startswith('net/gen/') and v.is_floating_point():
        v = sum(f.get_tensor(k).double() for f in fs) / len(fs)
        v = v.to(fs[-1].get_tensor(k).dtype)
    t[k] = v.contiguous()
save_file(t, out, metadata=meta)
