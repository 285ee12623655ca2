"""The domain of images: repositories, blobs, uploads, manifests, tags, referrers, deletion and GC."""
