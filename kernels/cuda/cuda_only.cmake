# cuda_only.cmake — the TESSERA_CUDA_ONLY build: kernels/cuda and tests/gpu, nothing else.
# For a GPU machine that has nvcc and PyTorch's NVIDIA wheels but none of Tessera's other
# dependencies (ZeroMQ, OpenBLAS, ...): tools/gpu-check.sh configures this there.
include(${CMAKE_SOURCE_DIR}/kernels/cuda/cuda.cmake)
if(NOT TESSERA_HAVE_CUDA)
  message(FATAL_ERROR "TESSERA_CUDA_ONLY: the CUDA library cannot be built here (see the 'CUDA:' lines above)")
endif()
find_package(OpenMP REQUIRED COMPONENTS C)

# The few host files the CUDA library and the test harness need: errors, dtypes, .npy, and
# the op table (contexts, ops.c's dispatch, the single-rank comm) with the CUDA backend alone.
file(GLOB_RECURSE _tessera_npy_source ${CMAKE_SOURCE_DIR}/models/formats/npy.c ${CMAKE_SOURCE_DIR}/models/*/npy.c)
add_library(tessera_cuda_host STATIC ${CMAKE_SOURCE_DIR}/kernels/base.c ${CMAKE_SOURCE_DIR}/kernels/tensor.c ${_tessera_npy_source}
  ${CMAKE_SOURCE_DIR}/kernels/backend.c ${CMAKE_SOURCE_DIR}/kernels/ops.c ${CMAKE_SOURCE_DIR}/kernels/comm.c
  ${CMAKE_SOURCE_DIR}/kernels/comm_single.c ${CMAKE_SOURCE_DIR}/kernels/comm_mpi.c ${CMAKE_SOURCE_DIR}/kernels/comm_nccl.c
  ${CMAKE_SOURCE_DIR}/kernels/quant.c ${CMAKE_SOURCE_DIR}/kernels/piece_sum.c)
target_include_directories(tessera_cuda_host PUBLIC ${CMAKE_SOURCE_DIR})
target_compile_definitions(tessera_cuda_host PUBLIC TESSERA_VERSION="${PROJECT_VERSION}" _GNU_SOURCE TESSERA_HAVE_CUDA=1)
include(${CMAKE_SOURCE_DIR}/kernels/comm_nccl.cmake)   # the GPU comm, with NCCL from the nvidia-nccl wheel
if(TESSERA_HAVE_NCCL)
  target_compile_definitions(tessera_cuda_host PUBLIC TESSERA_HAVE_NCCL=1)
  target_include_directories(tessera_cuda_host PRIVATE ${TESSERA_NCCL_INCLUDE})
  target_link_libraries(tessera_cuda_host PUBLIC ${TESSERA_NCCL_LIB})
endif()
find_package(Threads REQUIRED)
target_link_libraries(tessera_cuda_host PUBLIC OpenMP::OpenMP_C Threads::Threads m)
# each needs the other (backend.c lists the CUDA backend); CMake repeats the pair when linking
target_link_libraries(tessera_cuda PRIVATE tessera_cuda_host)
target_link_libraries(tessera_cuda_host PUBLIC tessera_cuda)

# The U-Net and the VAE with what they read their weights with, when cJSON is at hand (a GPU
# machine has no Debian packages: tools/gpu-check.sh --bundle puts the header and library in
# build/gpu-deps, handed over as a hint), so their parity tests run on the GPU.
find_path(TESSERA_CJSON_INCLUDE cjson/cJSON.h HINTS ${TESSERA_CUDA_HINTS} PATH_SUFFIXES include)
find_library(TESSERA_CJSON_LIB NAMES cjson libcjson.so.1 NAMES_PER_DIR HINTS ${TESSERA_CUDA_HINTS} PATH_SUFFIXES lib)
if(TESSERA_CJSON_INCLUDE AND TESSERA_CJSON_LIB)
  message(STATUS "CUDA only: with the U-Net and VAE (cJSON ${TESSERA_CJSON_LIB})")
  add_library(tessera_cuda_models STATIC
    ${CMAKE_SOURCE_DIR}/models/formats/safetensors.c ${CMAKE_SOURCE_DIR}/models/formats/gguf.c
    ${CMAKE_SOURCE_DIR}/models/formats/weight_binder.c ${CMAKE_SOURCE_DIR}/models/formats/model_files.c
    ${CMAKE_SOURCE_DIR}/models/diffusion/unet.c ${CMAKE_SOURCE_DIR}/models/diffusion/unet_config.c
    ${CMAKE_SOURCE_DIR}/models/diffusion/unet_parallel.c ${CMAKE_SOURCE_DIR}/models/diffusion/vae.c)
  target_include_directories(tessera_cuda_models PUBLIC ${TESSERA_CJSON_INCLUDE})
  target_link_libraries(tessera_cuda_models PUBLIC tessera_cuda_host ${TESSERA_CJSON_LIB})
  get_filename_component(_tessera_cjson_dir ${TESSERA_CJSON_LIB} DIRECTORY)
  list(APPEND TESSERA_CUDA_RUNTIME_DIRS ${_tessera_cjson_dir})
else()
  message(STATUS "CUDA only: no cJSON (tools/gpu-check.sh --bundle): the U-Net and VAE parity tests are not built")
endif()

add_library(tessera_test STATIC ${CMAKE_SOURCE_DIR}/tests/test.c)
target_link_libraries(tessera_test PUBLIC tessera_cuda_host)

enable_testing()
add_subdirectory(${CMAKE_SOURCE_DIR}/tests/gpu ${CMAKE_BINARY_DIR}/tests/gpu)
