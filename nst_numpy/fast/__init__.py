"""The fast engine: FastVGG19, the same network and API as the reference vgg.VGG19, made fast.

Read vgg.py first: it is the whole algorithm in about 80 lines. Everything here computes the
same numbers (float64: to rounding; float32: to the rounding of the Winograd-domain channel sums) by a
faster route. Each trick, the reference step it replaces, and the test that proves they agree:

Engine step (its file) / the reference step it replaces / the tests that prove they agree:

- Winograd F(4x4, 3x3) conv in row bands, the input transform one strided product (winograd)
  / layers.conv_forward (im2col + one GEMM)
  / `tests/test_fastconv.py::test_forward_matches_reference`,
  `tests/test_fastconv.py::test_input_transform_gives_bt_d_b_of_every_tile`
- backward to the input = Winograd conv with the flipped kernel, transformed once per network and
  kept across image sizes (winograd, fast_vgg) / layers.conv_backward
  / `tests/test_fastconv.py::test_backward_to_input_matches_reference`,
  `tests/test_memory_paths.py::test_a_new_image_size_keeps_the_transformed_kernels`
- direct 9-shift conv for 3-channel sides, conv1_1 (winograd) / layers.conv_forward, conv_backward
  / `tests/test_fastconv.py::test_direct_path_for_three_channels`
- ReLU fused into the conv's bands; a ReLU output nobody asked for kept as a bool mask only
  / layers.relu_forward (its cache is its output)
  / `tests/test_memory_paths.py::test_mask_out_is_the_sign_of_the_output`, and every test of
  `tests/test_engine_vs_reference.py`
- conv backward + injected tap gradient + ReLU mask in the same bands, written over the activation
  / VGG19.backward's `d + g`, then layers.relu_backward and conv_backward
  / `tests/test_memory_paths.py::test_mask_from_bool_or_float_and_add_callable_or_array_agree`,
  `tests/test_engine_vs_reference.py::test_activations_and_gradients_match`,
  `tests/test_engine_vs_reference.py::test_views_of_the_network_may_be_gradients`
- 2x2 pooling, and its backward fused with the ReLU below, in row bands (pooling_bands)
  / layers.avgpool_forward, maxpool_forward and their backward, relu_backward
  / `tests/test_engine_vs_reference.py::test_activations_and_gradients_match` (both poolings, odd sizes)
- style gradient as ActivationTimes(K): F @ K formed band by band inside backward (activation_times)
  / eq. 6 as an array, losses.style_layer_loss
  / `tests/test_engine_vs_reference.py::test_activation_times_equals_eq6_as_an_array`;
  a tile's window of it: `tests/test_tiling.py::test_tiled_equals_untiled` (rows and columns)
- Gram matrix of the zero-padded buffer, one partial Gram per thread (FastVGG19.gram)
  / losses.gram_matrix of the activation
  / `tests/test_memory_paths.py::test_gram_split_over_threads_equals_gram_matrix`
- planned buffer arena, reused every evaluation (buffers), its zero borders kept
  / fresh arrays for every activation
  / `tests/test_memory_paths.py::test_repeated_evaluations_are_bit_identical_and_the_arena_settles`,
  `tests/test_memory_paths.py::test_padded_zero_border_survives_a_replayed_episode`, `tests/test_buffers.py`
- a second backward of one forward redoes the forward / the reference keeps every cache
  / `tests/test_fastconv.py::test_repeated_backward_after_one_forward`
- bands on worker threads, single-threaded BLAS each, one band scratch per thread (winograd, threads)
  / one thread (BLAS's own)
  / `tests/test_fastconv.py::test_threads_do_not_change_results`,
  `tests/test_fastconv.py::test_bands_on_worker_threads_use_single_threaded_blas`,
  `tests/test_fastconv.py::test_band_buffers_are_reused_and_dropped_when_the_arena_grows`

objective.Objective uses whichever network it is given: with FastVGG19 it asks for
gram() and hands backward() ActivationTimes; with VGG19 it computes eq. 6 as an array.
"""
from .activation_times import ActivationTimes
from .fast_vgg import FastVGG19

__all__ = ["ActivationTimes", "FastVGG19"]
