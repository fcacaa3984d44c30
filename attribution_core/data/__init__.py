"""The data plane: images -> feature stores. The store format and its checks, extraction (local and Ray engines,
folders and webdataset shards), memory-mapped scoring, and a seeded synthetic store for tests."""
