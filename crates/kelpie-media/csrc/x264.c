/* Kelpie's bridge to libx264: loads the library at run time (like GStreamer's x264enc
 * plugin does, so Kelpie runs without it and falls back to another encoder), opens a
 * low-latency encoder in constant-QP mode and encodes one I420 frame per call at the QP
 * Kelpie's own rate control chose. Everything x264-specific stays in this file; the Rust
 * side sees an opaque handle and plain integers. */

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x264.h>

#define KX_STR2(x) #x
#define KX_STR(x) KX_STR2(x)

/* Defined in Rust: forwards x264's own messages to Kelpie's log. */
extern void kelpie_x264_log(int level, const char *msg);

typedef struct {
    void *lib;
    int (*param_default_preset)(x264_param_t *, const char *, const char *);
    int (*param_apply_profile)(x264_param_t *, const char *);
    x264_t *(*encoder_open)(x264_param_t *);
    int (*encoder_encode)(x264_t *, x264_nal_t **, int *, x264_picture_t *, x264_picture_t *);
    void (*encoder_close)(x264_t *);
    void (*picture_init)(x264_picture_t *);
} kx264_lib;

static kx264_lib LIB;
static int LIB_LOADED;
static pthread_once_t LIB_ONCE = PTHREAD_ONCE_INIT;

/* The file name of the library this bridge was built for. */
const char *kx264_library_name(void) { return "libx264.so." KX_STR(X264_BUILD); }

static void kx264_load_once(void) {
    void *lib = dlopen(kx264_library_name(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
#define KX_SYM(field, name)                                   \
    do {                                                      \
        *(void **)(&LIB.field) = dlsym(lib, name);            \
        if (!LIB.field) { dlclose(lib); return; }             \
    } while (0)
    KX_SYM(param_default_preset, "x264_param_default_preset");
    KX_SYM(param_apply_profile, "x264_param_apply_profile");
    KX_SYM(encoder_open, "x264_encoder_open_" KX_STR(X264_BUILD));
    KX_SYM(encoder_encode, "x264_encoder_encode");
    KX_SYM(encoder_close, "x264_encoder_close");
    KX_SYM(picture_init, "x264_picture_init");
#undef KX_SYM
    LIB.lib = lib;
    LIB_LOADED = 1;
}

/* Loads libx264 once (any thread); returns 0 when it is usable. */
int kx264_load(void) {
    pthread_once(&LIB_ONCE, kx264_load_once);
    return LIB_LOADED ? 0 : -1;
}

static void kx264_log(void *opaque, int level, const char *fmt, va_list args) {
    (void)opaque;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, args);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    kelpie_x264_log(level, msg);
}

typedef struct {
    x264_t *enc;
    int width, height;
    int64_t frames;
} kx264;

/* Opens an encoder for width x height I420 frames (even sizes) at about fps frames a
 * second with threads slice threads, for QPs from qp_low to qp_low + 40. Returns NULL when
 * libx264 is missing or refuses. */
static kx264 *kx264_open_with(int width, int height, int fps, int threads, int qp_low, int refresh);

kx264 *kx264_open(int width, int height, int fps, int threads, int qp_low) {
    return kx264_open_with(width, height, fps, threads, qp_low, 0);
}

/* As kx264_open, but recovering with a periodic intra refresh over refresh frames (a column
 * of intra macroblocks sweeping the picture) instead of IDR frames: for measuring which of
 * the two shows a whole picture sooner after a loss (docs/benchmarks.md). */
kx264 *kx264_open_refresh(int width, int height, int fps, int threads, int qp_low, int refresh) {
    return kx264_open_with(width, height, fps, threads, qp_low, refresh > 1 ? refresh : 2);
}

static kx264 *kx264_open_with(int width, int height, int fps, int threads, int qp_low, int refresh) {
    if (kx264_load() != 0) return NULL;
    x264_param_t p;
    if (LIB.param_default_preset(&p, "ultrafast", "zerolatency") < 0) return NULL;
    p.pf_log = kx264_log;
    p.i_log_level = X264_LOG_WARNING;
    p.i_csp = X264_CSP_I420;
    p.i_width = width;
    p.i_height = height;
    p.i_fps_num = fps > 0 ? fps : 60;
    p.i_fps_den = 1;
    p.i_threads = threads > 0 ? threads : 1;
    p.b_sliced_threads = 1;  /* slices, not frames, per thread: one frame of latency */
    p.i_bframe = 0;
    p.i_keyint_max = X264_KEYINT_MAX_INFINITE; /* keyframes on request only */
    if (refresh > 0) {
        p.b_intra_refresh = 1;
        p.i_keyint_max = refresh;
    }
    p.i_keyint_min = 1;
    p.i_scenecut_threshold = 0;
    p.b_annexb = 1;
    p.b_repeat_headers = 1; /* SPS and PPS with every keyframe */
    p.b_aud = 0;
    /* BT.601, limited range: what Kelpie's BGRx conversion writes. */
    p.vui.i_colorprim = 6;
    p.vui.i_transfer = 6;
    p.vui.i_colmatrix = 6;
    p.vui.b_fullrange = 0;
    /* Constant QP: x264 skips its half-resolution look-ahead analysis (a fifth of its time
     * on 1080p desktop content); each frame's QP comes from Kelpie's rate control. */
    p.rc.i_rc_method = X264_RC_CQP;
    /* In CQP mode x264 clamps every QP to the span of its I, P and B frame QPs, and caps
     * the I/P and P/B ratios at 10 (about 20 QP each way): P at qp_low + 20 with both
     * ratios at 10 opens qp_low to qp_low + 40. QPs above 51 are x264's emergency range
     * (its own rate control's last resort: coefficients are zeroed progressively). */
    p.rc.i_qp_constant = qp_low + 20;
    p.rc.f_ip_factor = 10.0f;
    p.rc.f_pb_factor = 10.0f;
    p.rc.b_mb_tree = 0;
    p.rc.i_lookahead = 0;
    /* Per-frame maps of the macroblocks that did not change (from the screen's damage):
     * x264 codes them as skips without analysing them, so a frame costs about what changed.
     * x264 keeps each macroblock's effective QP so that one last coded at a worse QP than
     * the frame's is still analysed (that is how refinement frames keep working). */
    p.analyse.b_mb_info = 1;
    /* The reconstructed picture is what Kelpie's delta frames are coded against (they are
     * not references, so x264's next frame still predicts from this one): complete it even
     * where x264 would not need it (with deblocking off, nothing is left out anyway). */
    p.b_full_recon = 1;
    /* x264 clears the flag of every macroblock marked constant whose decoded pixels it
     * changed after all (one last coded at a worse QP than the frame's is re-analysed): what
     * is left marked is bit-exact with the frame before, so a viewer redraws only the rest.
     * Exact because deblocking is off (as the ultrafast preset has it; x264 leaves the
     * effects of deblocking out of this map). */
    p.analyse.b_mb_info_update = 1;
    p.b_deblocking_filter = 0;
    if (LIB.param_apply_profile(&p, "baseline") < 0) return NULL;
    x264_t *enc = LIB.encoder_open(&p);
    if (!enc) return NULL;
    kx264 *k = calloc(1, sizeof *k);
    if (!k) { LIB.encoder_close(enc); return NULL; }
    k->enc = enc;
    k->width = width;
    k->height = height;
    return k;
}

/* Encodes one I420 frame (planes one after another, no padding) at qp (x264 holds it to the
 * range the encoder was opened for, up to 69); an IDR frame when idr. mb_info, when not
 * NULL, holds one byte per macroblock (row by row), X264_MBINFO_CONSTANT on those that equal
 * the frame before; x264 reads it, and clears the flag of each macroblock it changed after
 * all, during this call only (encoding is synchronous: no look-ahead, no frame threads).
 * On success returns
 * the size of the access unit at *out (Annex B, valid until the next call) and sets
 * *keyframe; returns -1 on failure. */
/* The reconstructed picture of the frame last encoded: luma, and chroma either interleaved
 * (NV12, x264's own layout: nv12 = 1, plane[2] unused) or planar. Valid until the next call. */
typedef struct {
    const uint8_t *plane[3];
    int stride[3];
    int nv12;
} kx264_recon;

int kx264_encode(kx264 *k, const uint8_t *i420, uint8_t *mb_info, int qp, int idr,
                 const uint8_t **out, int *keyframe, kx264_recon *recon) {
    x264_picture_t in, pic_out;
    LIB.picture_init(&in);
    size_t y = (size_t)k->width * (size_t)k->height;
    in.img.i_csp = X264_CSP_I420;
    in.img.i_plane = 3;
    in.img.plane[0] = (uint8_t *)i420;
    in.img.plane[1] = (uint8_t *)i420 + y;
    in.img.plane[2] = (uint8_t *)i420 + y + y / 4;
    in.img.i_stride[0] = k->width;
    in.img.i_stride[1] = k->width / 2;
    in.img.i_stride[2] = k->width / 2;
    in.i_type = idr ? X264_TYPE_IDR : X264_TYPE_AUTO;
    in.i_qpplus1 = qp + 1;
    in.i_pts = k->frames++;
    /* An IDR frame references nothing: every macroblock is coded. */
    in.prop.mb_info = idr ? NULL : mb_info;
    in.prop.mb_info_free = NULL;
    x264_nal_t *nals;
    int n = 0;
    int size = LIB.encoder_encode(k->enc, &nals, &n, &in, &pic_out);
    if (size < 0) return -1;
    /* x264 lays the payloads of one call out one after another. */
    *out = n > 0 ? nals[0].p_payload : NULL;
    *keyframe = pic_out.b_keyframe;
    memset(recon, 0, sizeof *recon);
    int csp = pic_out.img.i_csp & X264_CSP_MASK;
    if (size > 0 && !(pic_out.img.i_csp & X264_CSP_HIGH_DEPTH) &&
        (csp == X264_CSP_NV12 || csp == X264_CSP_I420)) {
        recon->nv12 = csp == X264_CSP_NV12;
        for (int i = 0; i < pic_out.img.i_plane && i < 3; i++) {
            recon->plane[i] = pic_out.img.plane[i];
            recon->stride[i] = pic_out.img.i_stride[i];
        }
    }
    return size;
}

void kx264_close(kx264 *k) {
    if (!k) return;
    LIB.encoder_close(k->enc);
    free(k);
}
