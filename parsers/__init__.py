"""Log format parsers: one module per format family, a registry and detection."""
import os

# numpy (read by the parse workers' fast path, parsers/arrowtable.py) starts a BLAS thread
# per core when imported, which nothing here uses: they would only vie with the workers.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
