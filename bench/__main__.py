"""``python -m bench``: run every benchmark and print its table."""

from bench import orders_sync

if __name__ == "__main__":
    orders_sync.main()
