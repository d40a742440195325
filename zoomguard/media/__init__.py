"""Getting and decoding untrusted image bytes: URL fetching, limits, JPEG scan count, pixel budget."""
