"""Clustering: pure seeded k-means steps (:mod:`.kmeans`), embedding readers (:mod:`.embeddings`)
and the Ray-sharded faiss index (:mod:`.index`, imported on demand so numpy users need no Ray)."""
