/*
 * shapes_eval.h — the prompt-following score of the demo's shapes world (an evaluation of
 * generated images, GenEval-style; not a model).
 *
 * The world (tools/shapes/world.py) draws 1-3 flat shapes (circle, square, triangle) in six
 * colours, two sizes, one per cell of a 3x3 grid, on white. This scorer
 *   1. finds the shapes in an RGB image. Every pixel is split into a palette colour and an
 *      amount of ink (its projection on the white -> colour line, so a blurred edge pixel
 *      counts in part). Pixels with at least half ink form 4-connected blobs (a blob wider
 *      than any one shape is cut at the grid lines); the fainter pixels around a blob join
 *      it. From the ink-weighted moments, which blur does not change (the mass, the third
 *      and fourth cumulants), come the shape (a triangle is skewed downwards; a square's
 *      fourth cumulant along its diagonals is half that along its sides, a circle's the
 *      same in every direction), the size (the side a shape of that kind and area has) and
 *      the cell (of the centre of mass);
 *   2. parses the prompt with the world's grammar ("two red circles and a small blue square
 *      in the top left"; descriptive captions use the same words); a word it does not know
 *      is an error naming the word;
 *   3. matches the objects to the phrases one to one: a phrase "two red circles" asks for
 *      two objects, and the assignment (Hungarian method) is the one that satisfies the most
 *      asked-for attributes. Per asked object it checks object (one was assigned), shape,
 *      colour, size and position (each only when asked), per phrase count; objects matched
 *      to no phrase are reported as extra.
 * Two verdicts per image:
 *   strict   the world's own meaning of a caption (world.py short_caption): a phrase with N
 *            objects means that exactly N objects of the image fit its description ("a red
 *            circle" = exactly one red circle; other objects may be there if they do not fit
 *            it), and every asked-for object is matched with all its attributes.
 *   lenient  GenEval's "at least": every asked-for object is matched with all its
 *            attributes; more objects of a kind and extra objects are ignored.
 * The palette, sizes and grammar are the world's; keep the two files in step.
 */
#ifndef TESSERA_SHAPES_EVAL_H
#define TESSERA_SHAPES_EVAL_H

#include "kernels/base.h"

enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_KINDS };
enum { SHAPES_COLOURS = 6, SHAPES_MAX_OBJECTS = 32, SHAPES_MAX_REQUESTS = 8, SHAPES_MAX_COUNT = 3 };
enum { SHAPES_MAX_SLOTS = SHAPES_MAX_REQUESTS * SHAPES_MAX_COUNT };
enum { SIZE_SMALL, SIZE_LARGE };

typedef enum { ATTR_OBJECT, ATTR_SHAPE, ATTR_COLOUR, ATTR_COUNT, ATTR_POSITION, ATTR_SIZE, ATTR_KINDS } shapes_attr;

typedef struct {
    int shape, colour, size, cell;  /* cell 0..8, row-major from the top left */
    float mass;                     /* ink, in pixels */
    float cx, cy;                   /* centre of mass, pixels */
} shapes_object;

typedef struct {
    shapes_object objects[SHAPES_MAX_OBJECTS];
    int count;
} shapes_scene;

/* One object phrase of a prompt; -1 means the prompt does not say. */
typedef struct {
    int count;                      /* 1 for "a"/"an"/"one"; 2, 3 for "two", "three" */
    int shape, colour, size, cell;
} shapes_request;

typedef struct {
    shapes_request items[SHAPES_MAX_REQUESTS];
    int count;
} shapes_prompt;

/* One image against one prompt. */
typedef struct {
    bool strict, lenient;
    int passed[ATTR_KINDS], total[ATTR_KINDS];
    int extra;                      /* objects of the image matched to no phrase */
    int slots;                      /* objects the prompt asks for */
    int matched[SHAPES_MAX_SLOTS];  /* per asked object (phrase by phrase): its object, -1 none */
} shapes_verdict;

/* Sums over images. */
typedef struct {
    int passed[ATTR_KINDS], total[ATTR_KINDS];
    int prompts, strict_correct, lenient_correct;
    int extra_objects, images_with_extra;
} shapes_score;

const char *shapes_attr_name(shapes_attr a);   /* "object", "shape", ... */
const char *shapes_shape_name(int shape);
const char *shapes_colour_name(int colour);

/* Finds the shapes in an RGB8 image (rows top to bottom). Any size; thresholds scale with it. */
int shapes_detect(const uint8_t *rgb, int width, int height, shapes_scene *out);
/* Same, reading a PNG. */
int shapes_detect_png(const char *path, shapes_scene *out);

/* Parses a prompt; ", on a white background" is skipped. -1 with a message naming the word
 * for a word outside the world's grammar, a phrase that names no shape, or too many objects. */
int shapes_parse_prompt(const char *text, shapes_prompt *out);

/* Judges one image against one prompt. */
void shapes_judge(const shapes_prompt *prompt, const shapes_scene *scene, shapes_verdict *out);
/* Adds a verdict to the sums. */
void shapes_score_add(shapes_score *score, const shapes_verdict *verdict);

/* Fraction of checks passed for one attribute (or all with ATTR_KINDS); -1 if none. */
double shapes_score_accuracy(const shapes_score *score, int attr);

#endif
