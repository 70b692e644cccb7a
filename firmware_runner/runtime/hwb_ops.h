/* The operators of the plan format: code, name, the kernel's check (run once by hwb_load) and its
 * run (by hwb_invoke). This list is the single source of the op codes; the plan compiler
 * (firmware_runner/compiler/plan.py) reads it from here. */
#ifndef HWB_OPS_H
#define HWB_OPS_H

#include "hwb_runtime.h"

#define HWB_OPS(X)                                                                      \
    X(1, CONV_2D, hwb_conv2d_s8_check, hwb_conv2d_s8)                                   \
    X(2, DEPTHWISE_CONV_2D, hwb_depthwise_conv2d_s8_check, hwb_depthwise_conv2d_s8)     \
    X(3, FULLY_CONNECTED, hwb_fully_connected_s8_check, hwb_fully_connected_s8)         \
    X(4, ADD, hwb_add_s8_check, hwb_add_s8)                                             \
    X(5, SUB, hwb_sub_s8_check, hwb_sub_s8)                                             \
    X(6, MUL, hwb_mul_s8_check, hwb_mul_s8)                                             \
    X(7, AVERAGE_POOL_2D, hwb_average_pool_s8_check, hwb_average_pool_s8)               \
    X(8, MAX_POOL_2D, hwb_max_pool_s8_check, hwb_max_pool_s8)                           \
    X(9, MEAN, hwb_mean_s8_check, hwb_mean_s8)                                          \
    X(10, PAD, hwb_pad_s8_check, hwb_pad_s8)                                            \
    X(11, RESHAPE, hwb_reshape_check, hwb_reshape)                                      \
    X(12, TRANSPOSE, hwb_transpose_s8_check, hwb_transpose_s8)                          \
    X(13, CONCATENATION, hwb_concatenation_s8_check, hwb_concatenation_s8)              \
    X(14, SOFTMAX, hwb_softmax_s8_check, hwb_softmax_s8)                                \
    X(15, LOG_SOFTMAX, hwb_log_softmax_s8_check, hwb_log_softmax_s8)                    \
    X(16, LOGISTIC, hwb_logistic_s8_check, hwb_logistic_s8)                             \
    X(17, TANH, hwb_tanh_s8_check, hwb_tanh_s8)                                         \
    X(18, HARD_SWISH, hwb_hard_swish_s8_check, hwb_hard_swish_s8)                       \
    X(19, RELU, hwb_relu_s8_check, hwb_relu_s8)                                         \
    X(20, RELU6, hwb_relu6_s8_check, hwb_relu6_s8)                                      \
    X(21, LEAKY_RELU, hwb_leaky_relu_s8_check, hwb_leaky_relu_s8)                       \
    X(22, QUANTIZE, hwb_quantize_s8_check, hwb_quantize_s8)                             \
    X(23, DEQUANTIZE, hwb_dequantize_s8_check, hwb_dequantize_s8)                       \
    X(24, RESIZE_NEAREST_NEIGHBOR, hwb_resize_nearest_s8_check, hwb_resize_nearest_s8)

/* The kernel paths: hwbench/kernel_paths.py chooses one per op, and the plan compiler writes its code
 * into the op's parameter struct (reading the codes from here). */
#define HWB_PATHS(X) X(0, reference) X(1, im2col) X(2, pointwise) X(3, dw_3x3) X(4, dw_general) X(5, dot)

#define HWB_PATH_ENUM(code, name) HWB_PATH_##name = code,
enum { HWB_PATHS(HWB_PATH_ENUM) };
#undef HWB_PATH_ENUM

#define HWB_OP_ENUM(code, name, check, run) HWB_OP_##name = code,
typedef enum { HWB_OPS(HWB_OP_ENUM) HWB_OP_END } hwb_op_code;
#undef HWB_OP_ENUM

/* An op's kernel: its check and its run. hwb_kernels.c has one for every op; an application built
 * from `hwbench export` links a table of only its model's kernels instead, and hwb_load refuses an op
 * whose entry is empty. */
typedef struct {
    hwb_status (*check)(const hwb_op_args *args);
    hwb_status (*run)(const hwb_op_args *args);
} hwb_kernel;
extern const hwb_kernel hwb_kernels[HWB_OP_END];

#define HWB_OP_DECLARE(code, name, check, run)                                      \
    hwb_status check(const hwb_op_args *args);                                      \
    hwb_status run(const hwb_op_args *args);
HWB_OPS(HWB_OP_DECLARE)
#undef HWB_OP_DECLARE

#endif
