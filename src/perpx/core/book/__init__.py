"""Order books: price levels of FIFO queues, best prices and depth."""
