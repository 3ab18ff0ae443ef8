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
  ${CMAKE_SOURCE_DIR}/kernels/comm_single.c ${CMAKE_SOURCE_DIR}/kernels/comm_mpi.c)
target_include_directories(tessera_cuda_host PUBLIC ${CMAKE_SOURCE_DIR})
target_compile_definitions(tessera_cuda_host PUBLIC TESSERA_VERSION="${PROJECT_VERSION}" _GNU_SOURCE TESSERA_HAVE_CUDA=1)
find_package(Threads REQUIRED)
target_link_libraries(tessera_cuda_host PUBLIC OpenMP::OpenMP_C Threads::Threads m)
# each needs the other (backend.c lists the CUDA backend); CMake repeats the pair when linking
target_link_libraries(tessera_cuda PRIVATE tessera_cuda_host)
target_link_libraries(tessera_cuda_host PUBLIC tessera_cuda)

add_library(tessera_test STATIC ${CMAKE_SOURCE_DIR}/tests/test.c)
target_link_libraries(tessera_test PUBLIC tessera_cuda_host)

enable_testing()
add_subdirectory(${CMAKE_SOURCE_DIR}/tests/gpu ${CMAKE_BINARY_DIR}/tests/gpu)
