"""Contact sheet of a saved video (T,S,S,3) uint8 .npy: frames at fixed times, scaled 2x. sheet.py VIDEO.npy OUT.png"""
import sys

import cv2
import numpy as np

v = np.load(sys.argv[1])
ts = [t for t in (0, 5, 10, 25, 50, 100, 200, 500, 1000, 1500, len(v) - 1) if t < len(v)]
row = np.concatenate([np.pad(v[t], ((2, 2), (2, 2), (0, 0))) for t in ts], 1)
row = cv2.resize(row, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
cv2.imwrite(sys.argv[2], row[..., ::-1])
