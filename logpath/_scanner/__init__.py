"""The generated C scanner (``scanner.re`` → ``scanner.c``) and its Python module ``_scan``."""
