/*
 * unet_config.c — where a U-Net's shape comes from: the published presets, a diffusers
 * unet/config.json, or the tensor shapes of a single-file CompVis checkpoint.
 * Anything UNet2DConditionModel supports that this U-Net does not is refused by name.
 */
#include "models/formats/model_files.h"
#include "models/diffusion/unet_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static void config_defaults(unet_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 4;
    c->out_channels = 4;
    c->sample_size = 64;
    c->layers_per_block = 2;
    c->cross_attention_dim = 768;
    c->norm_num_groups = 32;
    c->norm_eps = 1e-5f;
    c->flip_sin_to_cos = true;
    c->freq_shift = 0;
    c->conv_in_kernel = c->conv_out_kernel = 3;
    c->downsample_padding = 1;
    c->addition_time_embed_dim = 256;
}

int unet_config_preset(const char *name, unet_config *c) {
    config_defaults(c);
    if (strcmp(name, "sd15") == 0 || strcmp(name, "sd1") == 0) {
        static const int boc[] = {320, 640, 1280, 1280};
        c->levels = 4;
        for (int l = 0; l < 4; l++) {
            c->block_out_channels[l] = boc[l];
            c->down_attention[l] = c->up_attention[l] = l < 3;
            c->heads[l] = 8;
            c->transformer_depth[l] = 1;
        }
        return 0;
    }
    if (strcmp(name, "sd21") == 0 || strcmp(name, "sd2") == 0) {
        static const int boc[] = {320, 640, 1280, 1280}, heads[] = {5, 10, 20, 20};
        c->levels = 4;
        c->sample_size = 96;
        c->cross_attention_dim = 1024;
        c->use_linear_projection = true;
        c->upcast_attention = true;
        for (int l = 0; l < 4; l++) {
            c->block_out_channels[l] = boc[l];
            c->down_attention[l] = c->up_attention[l] = l < 3;
            c->heads[l] = heads[l];
            c->transformer_depth[l] = 1;
        }
        return 0;
    }
    if (strcmp(name, "sdxl") == 0) {
        static const int boc[] = {320, 640, 1280}, heads[] = {5, 10, 20}, depth[] = {1, 2, 10};
        c->levels = 3;
        c->sample_size = 128;
        c->cross_attention_dim = 2048;
        c->use_linear_projection = true;
        c->text_time = true;
        c->addition_time_embed_dim = 256;
        c->projection_class_embeddings_input_dim = 2816;
        for (int l = 0; l < 3; l++) {
            c->block_out_channels[l] = boc[l];
            c->down_attention[l] = c->up_attention[l] = l > 0;
            c->heads[l] = heads[l];
            c->transformer_depth[l] = depth[l];
        }
        return 0;
    }
    return ts_fail("unknown U-Net architecture '%s' (known: sd15, sd21, sdxl)", name);
}

/* ---- config.json -------------------------------------------------------- */

static bool json_is_unset(const cJSON *v) { return !v || cJSON_IsNull(v); }

static int json_int(const cJSON *root, const char *key, int *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (json_is_unset(v)) return 0;
    if (!cJSON_IsNumber(v)) return ts_fail("%s: '%s' is not a number", label, key);
    *out = v->valueint;
    return 0;
}

static int json_float(const cJSON *root, const char *key, float *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (json_is_unset(v)) return 0;
    if (!cJSON_IsNumber(v)) return ts_fail("%s: '%s' is not a number", label, key);
    *out = (float)v->valuedouble;
    return 0;
}

static int json_bool(const cJSON *root, const char *key, bool *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (json_is_unset(v)) return 0;
    if (!cJSON_IsBool(v)) return ts_fail("%s: '%s' is not true/false", label, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* An int or a list of `levels` ints (diffusers accepts both for per-level settings). */
static int json_per_level(const cJSON *root, const char *key, int levels, int *out, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (json_is_unset(v)) return 0;
    if (cJSON_IsNumber(v)) {
        for (int l = 0; l < levels; l++) out[l] = v->valueint;
        return 0;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != levels)
        return ts_fail("%s: '%s' must be a number or a list of %d numbers", label, key, levels);
    for (int l = 0; l < levels; l++) {
        const cJSON *e = cJSON_GetArrayItem(v, l);
        if (!cJSON_IsNumber(e)) return ts_fail("%s: '%s'[%d] is not a number", label, key, l);
        out[l] = e->valueint;
    }
    return 0;
}

/* Keys whose non-default values select features this U-Net does not have. */
static int refuse_unsupported(const cJSON *root, const char *label) {
    static const char *must_be_null[] = {
        "class_embed_type", "num_class_embeds", "time_cond_proj_dim", "encoder_hid_dim",
        "encoder_hid_dim_type", "time_embedding_dim", "time_embedding_act_fn", "timestep_post_act",
        "cross_attention_norm", "reverse_transformer_layers_per_block", "num_attention_heads",
        "mid_block_only_cross_attention"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++)
        if (!json_is_unset(cJSON_GetObjectItemCaseSensitive(root, must_be_null[i])))
            return ts_fail("%s: '%s' is set; this U-Net does not implement it", label, must_be_null[i]);
    static const char *must_be_false[] = {"center_input_sample", "dual_cross_attention",
                                          "class_embeddings_concat", "resnet_skip_time_act",
                                          "only_cross_attention"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, must_be_false[i]);
        if (cJSON_IsTrue(v) || cJSON_IsArray(v))
            if (!cJSON_IsArray(v) || cJSON_IsTrue(cJSON_GetArrayItem(v, 0)))
                return ts_fail("%s: '%s' is set; this U-Net does not implement it", label, must_be_false[i]);
    }
    static const struct { const char *key, *want; } strings[] = {
        {"act_fn", "silu"}, {"resnet_time_scale_shift", "default"}, {"time_embedding_type", "positional"},
        {"mid_block_type", "UNetMidBlock2DCrossAttn"}, {"attention_type", "default"}};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, strings[i].key);
        if (json_is_unset(v)) continue;
        if (!cJSON_IsString(v) || strcmp(v->valuestring, strings[i].want) != 0)
            return ts_fail("%s: '%s' must be \"%s\" for this U-Net", label, strings[i].key, strings[i].want);
    }
    static const char *must_be_one[] = {"resnet_out_scale_factor", "mid_block_scale_factor"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, must_be_one[i]);
        if (cJSON_IsNumber(v) && v->valuedouble != 1.0)
            return ts_fail("%s: '%s' must be 1 for this U-Net", label, must_be_one[i]);
    }
    return 0;
}

static int parse_block_types(const cJSON *root, const char *key, int levels, bool up, bool *attn, const char *label) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (json_is_unset(v)) return ts_fail("%s: '%s' is missing", label, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != levels)
        return ts_fail("%s: '%s' must list %d block types (one per block_out_channels)", label, key, levels);
    const char *plain = up ? "UpBlock2D" : "DownBlock2D", *cross = up ? "CrossAttnUpBlock2D" : "CrossAttnDownBlock2D";
    for (int i = 0; i < levels; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        int level = up ? levels - 1 - i : i;   /* up blocks run from the deepest level out */
        if (cJSON_IsString(e) && strcmp(e->valuestring, plain) == 0) attn[level] = false;
        else if (cJSON_IsString(e) && strcmp(e->valuestring, cross) == 0) attn[level] = true;
        else return ts_fail("%s: '%s'[%d] is not %s or %s", label, key, i, plain, cross);
    }
    return 0;
}

int unet_config_parse_json(const char *json, const char *label, unet_config *c) {
    config_defaults(c);
    cJSON *root = json_parse_config(json, label);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ts_fail("%s: not a JSON object", label);
    }
    int rc = -1;
    const cJSON *boc = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (!cJSON_IsArray(boc) || cJSON_GetArraySize(boc) < 1 || cJSON_GetArraySize(boc) > UNET_MAX_LEVELS) {
        ts_fail("%s: 'block_out_channels' must be a list of 1 to %d numbers", label, UNET_MAX_LEVELS);
        goto done;
    }
    c->levels = cJSON_GetArraySize(boc);
    for (int l = 0; l < c->levels; l++) {
        const cJSON *e = cJSON_GetArrayItem(boc, l);
        if (!cJSON_IsNumber(e) || e->valueint <= 0) { ts_fail("%s: 'block_out_channels'[%d] is not a positive number", label, l); goto done; }
        c->block_out_channels[l] = e->valueint;
        c->heads[l] = 8;
        c->transformer_depth[l] = 1;
    }
    if (refuse_unsupported(root, label)) goto done;
    if (json_int(root, "in_channels", &c->in_channels, label) || json_int(root, "out_channels", &c->out_channels, label) ||
        json_int(root, "sample_size", &c->sample_size, label) ||
        json_int(root, "layers_per_block", &c->layers_per_block, label) ||
        json_int(root, "cross_attention_dim", &c->cross_attention_dim, label) ||
        json_int(root, "norm_num_groups", &c->norm_num_groups, label) ||
        json_float(root, "norm_eps", &c->norm_eps, label) ||
        json_bool(root, "flip_sin_to_cos", &c->flip_sin_to_cos, label) ||
        json_float(root, "freq_shift", &c->freq_shift, label) ||
        json_bool(root, "use_linear_projection", &c->use_linear_projection, label) ||
        json_bool(root, "upcast_attention", &c->upcast_attention, label) ||
        json_int(root, "conv_in_kernel", &c->conv_in_kernel, label) ||
        json_int(root, "conv_out_kernel", &c->conv_out_kernel, label) ||
        json_int(root, "downsample_padding", &c->downsample_padding, label) ||
        json_int(root, "addition_time_embed_dim", &c->addition_time_embed_dim, label) ||
        json_int(root, "projection_class_embeddings_input_dim", &c->projection_class_embeddings_input_dim, label) ||
        json_per_level(root, "attention_head_dim", c->levels, c->heads, label) ||
        json_per_level(root, "transformer_layers_per_block", c->levels, c->transformer_depth, label) ||
        parse_block_types(root, "down_block_types", c->levels, false, c->down_attention, label) ||
        parse_block_types(root, "up_block_types", c->levels, true, c->up_attention, label))
        goto done;
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "layers_per_block"))) {
        ts_fail("%s: per-level 'layers_per_block' is not supported", label);
        goto done;
    }
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(root, "addition_embed_type");
    if (!json_is_unset(add)) {
        if (!cJSON_IsString(add) || strcmp(add->valuestring, "text_time") != 0) {
            ts_fail("%s: 'addition_embed_type' must be null or \"text_time\"", label);
            goto done;
        }
        c->text_time = true;
    }
    rc = unet_config_check(c, label);
done:
    cJSON_Delete(root);
    return rc;
}

int unet_config_check(const unet_config *c, const char *label) {
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS) return ts_fail("%s: %d levels (1..%d allowed)", label, c->levels, UNET_MAX_LEVELS);
    if (c->in_channels <= 0 || c->out_channels <= 0 || c->layers_per_block <= 0 || c->cross_attention_dim <= 0)
        return ts_fail("%s: in/out channels, layers_per_block and cross_attention_dim must be positive", label);
    if (c->norm_num_groups <= 0) return ts_fail("%s: norm_num_groups must be positive", label);
    if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0 || c->conv_in_kernel < 1 || c->conv_out_kernel < 1)
        return ts_fail("%s: conv_in_kernel and conv_out_kernel must be odd", label);
    if (c->block_out_channels[0] % 2) return ts_fail("%s: block_out_channels[0] must be even (time embedding)", label);
    for (int l = 0; l < c->levels; l++) {
        int ch = c->block_out_channels[l];
        if (ch % c->norm_num_groups) return ts_fail("%s: block_out_channels[%d] = %d is not a multiple of norm_num_groups %d", label, l, ch, c->norm_num_groups);
        bool needs_heads = c->down_attention[l] || c->up_attention[l] || l == c->levels - 1;
        if (needs_heads && (c->heads[l] <= 0 || ch % c->heads[l]))
            return ts_fail("%s: level %d: %d channels do not split into %d attention heads", label, l, ch, c->heads[l]);
        if (c->transformer_depth[l] <= 0) return ts_fail("%s: transformer_layers_per_block[%d] must be positive", label, l);
    }
    if (c->text_time && (c->addition_time_embed_dim <= 0 || c->addition_time_embed_dim % 2 ||
                         c->projection_class_embeddings_input_dim <= 6 * c->addition_time_embed_dim))
        return ts_fail("%s: text_time needs an even addition_time_embed_dim and projection_class_embeddings_input_dim > 6 x it", label);
    return 0;
}

/* ---- inferred from a CompVis checkpoint ---------------------------------- */

static bool has(const safetensors *st, const char *prefix, const char *fmt, int a, int b) {
    char name[256], rest[200];
    snprintf(rest, sizeof rest, fmt, a, b);
    snprintf(name, sizeof name, "%s%s", prefix, rest);
    return safetensors_has(st, name);
}

static int shape_of(const safetensors *st, const char *prefix, const char *rest, tensor *t) {
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, rest);
    return safetensors_get(st, name, t);
}

/* Depth of the transformer at BLOCKS.k.1, or at middle_block.1 when k < 0 (0 if none). */
static int transformer_depth_at(const safetensors *st, const char *prefix, const char *blocks, int k) {
    char fmt[128];
    if (k < 0) snprintf(fmt, sizeof fmt, "%s.1.transformer_blocks.%%d.norm1.weight%%.0d", blocks);
    else snprintf(fmt, sizeof fmt, "%s.%d.1.transformer_blocks.%%d.norm1.weight%%.0d", blocks, k);
    int depth = 0;
    while (has(st, prefix, fmt, depth, 0)) depth++;
    return depth;
}

int unet_config_infer(const safetensors *st, const char *prefix, unet_config *c) {
    const char *label = safetensors_path(st);
    config_defaults(c);
    tensor t;
    if (shape_of(st, prefix, "input_blocks.0.0.weight", &t) || t.ndim != 4)
        return ts_fail("%s: cannot infer the U-Net: no 4-D %sinput_blocks.0.0.weight", label, prefix);
    c->in_channels = (int)t.shape[1];
    c->conv_in_kernel = (int)t.shape[2];
    if (shape_of(st, prefix, "out.2.weight", &t) || t.ndim != 4)
        return ts_fail("%s: cannot infer the U-Net: no 4-D %sout.2.weight", label, prefix);
    c->out_channels = (int)t.shape[0];
    c->conv_out_kernel = (int)t.shape[2];

    /* input_blocks: lpb ResNets (each maybe with a transformer) per level, then a downsampler. */
    int k = 1, level = 0, lpb = -1;
    for (;;) {
        int resnets = 0;
        while (has(st, prefix, "input_blocks.%d.0.in_layers.2.weight%.0d", k, 0)) {
            if (resnets == 0) {
                char rest[128];
                snprintf(rest, sizeof rest, "input_blocks.%d.0.out_layers.3.weight", k);
                if (shape_of(st, prefix, rest, &t)) return -1;
                if (level >= UNET_MAX_LEVELS) return ts_fail("%s: more than %d levels", label, UNET_MAX_LEVELS);
                c->block_out_channels[level] = (int)t.shape[0];
                int depth = transformer_depth_at(st, prefix, "input_blocks", k);
                c->down_attention[level] = depth > 0;
                c->transformer_depth[level] = depth > 0 ? depth : 1;
                if (depth > 0) {
                    snprintf(rest, sizeof rest, "input_blocks.%d.1.proj_in.weight", k);
                    if (shape_of(st, prefix, rest, &t)) return -1;
                    c->use_linear_projection = t.ndim == 2;
                    snprintf(rest, sizeof rest, "input_blocks.%d.1.transformer_blocks.0.attn2.to_k.weight", k);
                    if (shape_of(st, prefix, rest, &t)) return -1;
                    c->cross_attention_dim = (int)t.shape[1];
                }
            }
            resnets++;
            k++;
        }
        if (resnets == 0) return ts_fail("%s: cannot infer the U-Net: no ResNet at %sinput_blocks.%d", label, prefix, k);
        if (lpb < 0) lpb = resnets;
        else if (resnets != lpb) return ts_fail("%s: level %d has %d ResNets, level 0 has %d", label, level, resnets, lpb);
        level++;
        if (!has(st, prefix, "input_blocks.%d.0.op.weight%.0d", k, 0)) break;
        k++;
    }
    c->levels = level;
    c->layers_per_block = lpb;
    int mid_depth = transformer_depth_at(st, prefix, "middle_block", -1);
    if (mid_depth == 0) return ts_fail("%s: cannot infer the U-Net: no transformer in %smiddle_block.1", label, prefix);
    c->transformer_depth[c->levels - 1] = mid_depth;
    for (int i = 0; i < c->levels; i++) {
        int lvl = c->levels - 1 - i, depth = transformer_depth_at(st, prefix, "output_blocks", i * (lpb + 1));
        c->up_attention[lvl] = depth > 0;
        if (depth > 0 && !c->down_attention[lvl]) c->transformer_depth[lvl] = depth;
    }
    if (has(st, prefix, "middle_block.1.proj_in.weight%.0d%.0d", 0, 0)) {
        if (shape_of(st, prefix, "middle_block.1.proj_in.weight", &t)) return -1;
        c->use_linear_projection = t.ndim == 2;
        if (shape_of(st, prefix, "middle_block.1.transformer_blocks.0.attn2.to_k.weight", &t)) return -1;
        c->cross_attention_dim = (int)t.shape[1];
    }
    if (has(st, prefix, "label_emb.0.0.weight%.0d%.0d", 0, 0)) {
        if (shape_of(st, prefix, "label_emb.0.0.weight", &t)) return -1;
        c->text_time = true;
        c->addition_time_embed_dim = 256;
        c->projection_class_embeddings_input_dim = (int)t.shape[1];
    }
    /* Not visible in shapes: the conventions of the published models. */
    bool sd1 = c->cross_attention_dim == 768;
    for (int l = 0; l < c->levels; l++) c->heads[l] = sd1 ? 8 : c->block_out_channels[l] / 64;
    c->sample_size = c->text_time ? 128 : sd1 ? 64 : 96;
    c->upcast_attention = !sd1 && !c->text_time;
    return unet_config_check(c, label);
}
