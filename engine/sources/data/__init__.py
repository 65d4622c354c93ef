"""Package data of the source stage: astronaut_landmarks.npy (478x3 float32 MediaPipe landmarks of
skimage.data.astronaut(), pixels; made by ``python -m engine.sources.demo --make-landmarks MODEL``)."""
