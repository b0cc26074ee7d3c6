// backend.cu: the CUDA Backend table (kernels/backend.h): the launchers of
// kernels/cuda/*.h plus device memory from device.h.
#include <cuda_runtime.h>

#include "../backend.h"
#include "gemm.h"
#include "linear.h"
#include "conv2d.h"
#include "norm.h"
#include "activation.h"
#include "pool.h"
#include "attention.h"
#include "shape.h"
#include "embed.h"
#include "loss.h"
#include "adamw.h"
#include "device.h"
#include "rng_cuda.h"

static const char *cuda_status_str(int st) {
    return cudaGetErrorString((cudaError_t)st);
}

static Backend g_cuda;

// Filled by name (not position), so a slot can only hold the launcher of its op.
static void fill_table(void) {
    g_cuda.name = "cuda";
    g_cuda.device = DEV_CUDA;
    g_cuda.alloc = dev_malloc;
    g_cuda.free = dev_free;
    g_cuda.upload = dev_upload;
    g_cuda.download = dev_download;
    g_cuda.memset = dev_memset;
    g_cuda.sync = dev_sync;
    g_cuda.default_stream = dev_stream;
    g_cuda.status_str = cuda_status_str;
    g_cuda.philox_fill_uniform = cuda_philox_fill_uniform;
    g_cuda.philox_fill_normal = cuda_philox_fill_normal;
    g_cuda.gemm = cuda_gemm;
    g_cuda.gemm_batched = cuda_gemm_batched;
    g_cuda.gemm_f32out = cuda_gemm_f32out;
    g_cuda.gemm_batched_f32out = cuda_gemm_batched_f32out;
    g_cuda.gemm_bias = cuda_gemm_bias;
    g_cuda.linear_fwd = cuda_linear_fwd;
    g_cuda.linear_bwd = cuda_linear_bwd;
    g_cuda.bias_grad = cuda_bias_grad;
    g_cuda.conv2d_fwd = cuda_conv2d_fwd;
    g_cuda.conv2d_bwd = cuda_conv2d_bwd;
    g_cuda.groupnorm_fwd = cuda_groupnorm_fwd;
    g_cuda.groupnorm_bwd = cuda_groupnorm_bwd;
    g_cuda.layernorm_fwd = cuda_layernorm_fwd;
    g_cuda.layernorm_bwd = cuda_layernorm_bwd;
    g_cuda.batchnorm_fwd_infer = cuda_batchnorm_fwd_infer;
    g_cuda.batchnorm_fwd_train = cuda_batchnorm_fwd_train;
    g_cuda.batchnorm_bwd_train = cuda_batchnorm_bwd_train;
    g_cuda.batchnorm_bwd_infer = cuda_batchnorm_bwd_infer;
    g_cuda.relu_fwd = cuda_relu_fwd;
    g_cuda.relu_bwd = cuda_relu_bwd;
    g_cuda.sigmoid_fwd = cuda_sigmoid_fwd;
    g_cuda.sigmoid_bwd = cuda_sigmoid_bwd;
    g_cuda.silu_fwd = cuda_silu_fwd;
    g_cuda.silu_bwd = cuda_silu_bwd;
    g_cuda.gelu_fwd = cuda_gelu_fwd;
    g_cuda.gelu_bwd = cuda_gelu_bwd;
    g_cuda.quickgelu_fwd = cuda_quickgelu_fwd;
    g_cuda.quickgelu_bwd = cuda_quickgelu_bwd;
    g_cuda.prelu_fwd = cuda_prelu_fwd;
    g_cuda.prelu_bwd = cuda_prelu_bwd;
    g_cuda.geglu_fwd = cuda_geglu_fwd;
    g_cuda.geglu_bwd = cuda_geglu_bwd;
    g_cuda.softmax_fwd = cuda_softmax_fwd;
    g_cuda.softmax_bwd = cuda_softmax_bwd;
    g_cuda.maxpool2d_fwd = cuda_maxpool2d_fwd;
    g_cuda.maxpool2d_bwd = cuda_maxpool2d_bwd;
    g_cuda.avgpool2d_fwd = cuda_avgpool2d_fwd;
    g_cuda.avgpool2d_bwd = cuda_avgpool2d_bwd;
    g_cuda.global_avgpool_fwd = cuda_global_avgpool_fwd;
    g_cuda.global_avgpool_bwd = cuda_global_avgpool_bwd;
    g_cuda.channel_scale_fwd = cuda_channel_scale_fwd;
    g_cuda.channel_scale_bwd = cuda_channel_scale_bwd;
    g_cuda.attention_fwd = cuda_attention_fwd;
    g_cuda.attention_bwd = cuda_attention_bwd;
    g_cuda.upsample2x_fwd = cuda_upsample2x_fwd;
    g_cuda.upsample2x_bwd = cuda_upsample2x_bwd;
    g_cuda.concat_fwd = cuda_concat_fwd;
    g_cuda.concat_bwd = cuda_concat_bwd;
    g_cuda.add_fwd = cuda_add_fwd;
    g_cuda.add_bwd = cuda_add_bwd;
    g_cuda.embedding_fwd = cuda_embedding_fwd;
    g_cuda.embedding_bwd = cuda_embedding_bwd;
    g_cuda.timestep_embedding_fwd = cuda_timestep_embedding_fwd;
    g_cuda.timestep_embedding_bwd = cuda_timestep_embedding_bwd;
    g_cuda.dropout_fwd = cuda_dropout_fwd;
    g_cuda.dropout_bwd = cuda_dropout_bwd;
    g_cuda.mse_loss_fwd = cuda_mse_loss_fwd;
    g_cuda.mse_loss_bwd = cuda_mse_loss_bwd;
    g_cuda.l2norm_fwd = cuda_l2norm_fwd;
    g_cuda.l2norm_bwd = cuda_l2norm_bwd;
    g_cuda.cosine_sim_fwd = cuda_cosine_sim_fwd;
    g_cuda.cosine_sim_bwd = cuda_cosine_sim_bwd;
    g_cuda.adamw_step = cuda_adamw_step;
    g_cuda.grad_norm = cuda_grad_norm;
}

// The CUDA table; initialises device 0 on first use (NULL + error when no device).
extern "C" const Backend *cuda_backend(void) {
    if (dev_init(0) != 0) return NULL;
    if (!g_cuda.name) fill_table();
    return &g_cuda;
}
