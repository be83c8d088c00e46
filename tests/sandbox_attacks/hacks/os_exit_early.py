"""Leave through os._exit(0), past every handler."""
import os

os._exit(0)
