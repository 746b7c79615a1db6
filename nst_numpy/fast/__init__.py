"""The fast engine: FastVGG19, the same network and API as the reference vgg.VGG19, made fast.

Read vgg.py first: it is the whole algorithm in about 80 lines. Everything here computes the
same numbers (float64: to rounding; float32: to the rounding of the Winograd-domain channel sums) by a
faster route. Each trick, the reference step it replaces, and the test that proves they agree:

| engine step (file)                                  | replaces (reference)                      | proved by (tests/)                                  |
|-----------------------------------------------------|-------------------------------------------|-----------------------------------------------------|
| Winograd F(4x4, 3x3) conv in row bands (winograd)   | layers.conv_forward (im2col + one GEMM)   | test_fastconv: test_forward_matches_reference       |
| backward to the input = Winograd conv with the      | layers.conv_backward                      | test_fastconv: test_backward_to_input_matches_...   |
|   flipped kernel, pre-transformed once (winograd)   |                                           |                                                     |
| direct 9-shift conv for 3-channel sides (conv1_1)   | layers.conv_forward / conv_backward       | test_fastconv: test_direct_path_for_three_channels  |
| ReLU fused into the conv's bands; a ReLU output     | layers.relu_forward (cache = its output)  | test_memory_paths: test_mask_out_is_the_sign_...;   |
|   nobody asked for is kept as a bool mask only      |                                           | test_engine_vs_reference: every test                |
| conv backward + injected tap gradient + ReLU mask   | VGG19.backward's `d + g`, then            | test_memory_paths: test_mask_from_bool_or_float_...;|
|   in the same bands, written over the activation    |   layers.relu_backward, conv_backward     | test_engine_vs_reference: test_activations_and_...  |
| 2x2 pooling, and its backward fused with the ReLU   | layers.avgpool_/maxpool_forward/backward, | test_engine_vs_reference: both poolings, odd sizes  |
|   below, in row bands (pooling_bands)               |   relu_backward                           |                                                     |
| style gradient as ActivationTimes(K): F @ K formed  | eq. 6 as an array, losses.style_layer_loss| test_engine_vs_reference: test_activation_times_... |
|   band by band inside backward (activation_times)   |                                           |                                                     |
| Gram of the zero-padded buffer, one partial Gram    | losses.gram_matrix of the activation      | test_memory_paths: test_gram_split_over_threads_... |
|   per thread (FastVGG19.gram)                       |                                           |                                                     |
| planned buffer arena, reused every evaluation       | fresh arrays for every activation         | test_memory_paths: test_repeated_evaluations_...;   |
|   (buffers)                                         |                                           | test_buffers                                        |
| a second backward of one forward redoes the forward | the reference keeps every cache           | test_fastconv: test_repeated_backward_after_one_... |
| bands on worker threads, single-threaded BLAS each  | one thread (BLAS's own)                   | test_fastconv: test_threads_do_not_change_results;  |
|   (winograd, threads)                               |                                           | test_bands_on_worker_threads_use_single_...         |

objective.Objective uses whichever network it is given: with FastVGG19 it asks for
gram() and hands backward() ActivationTimes; with VGG19 it computes eq. 6 as an array.
"""
from .activation_times import ActivationTimes
from .fast_vgg import FastVGG19

__all__ = ["ActivationTimes", "FastVGG19"]
