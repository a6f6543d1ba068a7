"""History imports: long OHLCV series from files, beside what the live and batch sources bring."""
