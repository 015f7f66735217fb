"""Every bound on user-supplied work, in one place (issue 13: bounded work at every door).

Each constant is checked where input enters (loaders, the capture reader, the CLI, the app) and each check's
message names the limit, so a user sees what to change. Change a bound here and nowhere else.
"""

from __future__ import annotations

# -- images and videos ------------------------------------------------------------------------------------
MAX_IMAGE_PIXELS = 40_000_000       # per photo or mask, read from the header before decoding (40 MP)
MAX_VIDEO_PIXELS = 8_300_000        # per video frame (4K UHD)
MAX_VIDEO_FRAMES = 18_000           # frames a video may have (10 min at 30 fps); we decode only a few of them
MAX_VIDEO_DRIVE_FRAMES = 1_800      # frames processed when a video drives an avatar (60 s at 30 fps)
MAX_FILE_MB = 20                    # one uploaded file
MAX_VIEWS = 8                       # views given to the network (the paper uses 4)
MAX_INPUT_FILES = 64                # photos or frames considered per request (at most MAX_VIEWS are used)

# -- capture-folder zips ----------------------------------------------------------------------------------
MAX_ZIP_FILES = 200                 # members of one zip
MAX_ZIP_BYTES = 100 * 2**20         # uncompressed bytes of one zip (its members' declared sizes, and the bytes read)
MAX_ZIP_RATIO = 200                 # uncompressed / compressed per member: above is a decompression bomb
MAX_ZIP_RATIO_MIN_BYTES = 2**20     # ... checked for members above 1 MB (small JSON files compress well)
MAX_JSON_BYTES = 2 * 2**20          # cameras.json, expressions.json, synth.json
MAX_CODES_FILE_BYTES = 32 * 2**20   # a --expression / --expressions .json or .npy file (codes [T, C])
MAX_IMAGE_SIDE = 100_000            # width or height a camera in cameras.json may declare
MAX_NAME_CHARS = 100                # a view name (file stem)

# -- outputs ----------------------------------------------------------------------------------------------
MIN_RENDER_SIZE = 16                # pixels per side of a render, a turntable or a video
MAX_RENDER_SIZE = 2048
MAX_SEQUENCE_FRAMES = 2_000         # frames of one expression sequence / animation / turntable
MIN_FPS, MAX_FPS = 1.0, 120.0       # frame rate of a written video
MAX_EXPRESSION_ABS = 10.0           # |code value|; the shipped expression space spans about [-1, 1]
MAX_SEQUENCE_KEYS = 32              # presets in one played sequence (the app)

# -- .ply files read (render, the viewer) -----------------------------------------------------------------
MAX_PLY_HEADER_BYTES = 64 * 1024    # bytes before end_header (a 3DGS header is about 1 KB)
MAX_PLY_VERTICES = 50_000_000       # Gaussians in one file (ours have about 10^5)

# -- the web app ------------------------------------------------------------------------------------------
SESSION_DISK_MB = 300               # files one browser session may keep on the server
TOTAL_DISK_MB = 4_000               # all sessions together; the oldest sessions are deleted first
UPLOADS_PER_MINUTE = 12             # creations per client per minute
UPLOAD_REQUESTS_PER_MINUTE = 60     # raw file uploads (POST /gradio_api/upload) per client per minute
UPLOAD_MB_PER_MINUTE = 200          # bytes those uploads may carry per client per minute

# -- generated heads (GGHead route) -----------------------------------------------------------------------
MAX_SEED = 2**31 - 1                # seeds are 0 .. MAX_SEED (torch.Generator seeds; same head on every machine)
TRUNCATION_RANGE = (0.0, 2.0)       # GGHead truncation psi: 0 = the average head, 1 = untruncated, >1 exaggerates

# -- text prompts (the text -> portrait route) ------------------------------------------------------------
MAX_PROMPT_CHARS = 300              # characters of one prompt
MAX_PROMPT_WORDS = 40               # words of one prompt (the small model reads at most 24 tokens)
MAX_DIFFUSION_STEPS = 100           # sampler steps per portrait
MAX_GUIDANCE = 20.0                 # classifier-free guidance scale
