/* Decode a box of JPEG frames with libjpeg-turbo's libjpeg API: only the iMCU columns that hold the box go through
 * the inverse DCT, colour conversion and upsampling (jpeg_crop_scanline), and the rows above it are skipped
 * (jpeg_skip_scanlines). A plain shared library, loaded with ctypes by videomae/video/jpegbox.py, which owns the
 * contract (same pixels as decoding the whole frame and slicing; tests/videomae/test_jpegbox.py). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

struct box_error {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
};

static void box_error_exit(j_common_ptr cinfo) { longjmp(((struct box_error *)cinfo->err)->jump, 1); }

/* Warnings (corrupt data the library would paper over with grey) are errors here: the caller then decodes the frame
 * the way it always has, so a damaged frame gives what it gave before. */
static void box_emit_message(j_common_ptr cinfo, int level) {
  if (level < 0) longjmp(((struct box_error *)cinfo->err)->jump, 1);
}

static void box_output_message(j_common_ptr cinfo) { (void)cinfo; }

/* Frames datas[0..n) (each `height` x `width`) -> rows [top, top + h) of each, columns [*x0, *x0 + *cw) as RGB: the
 * iMCU-aligned columns libjpeg decodes to cover [left, left + w) with one iMCU of margin on each side (fancy
 * upsampling reads the chroma sample beyond a column, which a crop ending at an iMCU boundary would not have decoded:
 * the box's edge column would differ from the whole frame's). Written straight into out (n, h, stride, 3), the
 * first *cw of every row's `stride` pixels; the same *x0 and *cw for every frame of the clip. Returns 0, or -(i + 1)
 * for the first frame i that failed, with `msg` (JMSG_LENGTH_MAX bytes) saying why. */
int jb_decode(const unsigned char *const *datas, const unsigned long *sizes, int n, int height, int width, int top,
              int left, int h, int w, unsigned char *out, int stride, int *x0, int *cw, char *msg) {
  struct jpeg_decompress_struct cinfo;
  struct box_error err;
  volatile int i = 0;
  if (top < 0 || left < 0 || h <= 0 || w <= 0 || top + h > height || left + w > width) {
    snprintf(msg, JMSG_LENGTH_MAX, "box (%d, %d, %d, %d) outside a %d x %d frame", top, left, h, w, height, width);
    return -1;
  }
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = box_error_exit;
  err.pub.emit_message = box_emit_message;
  err.pub.output_message = box_output_message;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    (*cinfo.err->format_message)((j_common_ptr)&cinfo, msg);
    jpeg_destroy_decompress(&cinfo);
    return -(i + 1);
  }
  JSAMPROW rows[16];
  for (; i < n; i++) {
    jpeg_mem_src(&cinfo, datas[i], sizes[i]);
    jpeg_read_header(&cinfo, TRUE);
    if ((int)cinfo.image_height != height || (int)cinfo.image_width != width) {
      snprintf(msg, JMSG_LENGTH_MAX, "frame is %d x %d, the clip's first is %d x %d", (int)cinfo.image_height,
               (int)cinfo.image_width, height, width);
      jpeg_destroy_decompress(&cinfo);
      return -(i + 1);
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int imcu = cinfo.max_h_samp_factor * DCTSIZE;
    int a = left - imcu < 0 ? 0 : left - imcu;
    int b = left + w + imcu > width ? width : left + w + imcu;
    JDIMENSION xoff = (JDIMENSION)a, cols = (JDIMENSION)(b - a);
    if (cols < (JDIMENSION)width) jpeg_crop_scanline(&cinfo, &xoff, &cols);
    else xoff = 0, cols = (JDIMENSION)width;
    if ((int)cols > stride || (i > 0 && ((int)xoff != *x0 || (int)cols != *cw))) {
      snprintf(msg, JMSG_LENGTH_MAX, "decoded columns [%d, %d) do not fit a row of %d", (int)xoff,
               (int)(xoff + cols), stride);
      jpeg_destroy_decompress(&cinfo);
      return -(i + 1);
    }
    *x0 = (int)xoff;
    *cw = (int)cols;
    if (top > 0) jpeg_skip_scanlines(&cinfo, (JDIMENSION)top);
    unsigned char *dst = out + (size_t)i * h * stride * 3;
    int y = 0;
    while (y < h) {
      int want = h - y < 16 ? h - y : 16;
      for (int k = 0; k < want; k++) rows[k] = dst + (size_t)(y + k) * stride * 3;
      y += (int)jpeg_read_scanlines(&cinfo, rows, (JDIMENSION)want);
    }
    jpeg_abort_decompress(&cinfo);
  }
  jpeg_destroy_decompress(&cinfo);
  return 0;
}
