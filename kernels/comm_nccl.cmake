# comm_nccl.cmake — NCCL for the GPU comm (kernels/comm_nccl.c), found only where the CUDA
# library is built (TESSERA_HAVE_CUDA, kernels/cuda/cuda.cmake). Sets TESSERA_HAVE_NCCL, and
# TESSERA_NCCL_INCLUDE / TESSERA_NCCL_LIB for the target that compiles comm_nccl.c; adds the
# library's folder to TESSERA_CUDA_RUNTIME_DIRS (PyTorch's nvidia-nccl wheel has no -dev
# package's symlink, only libnccl.so.2). Included by the top CMakeLists.txt and by
# kernels/cuda/cuda_only.cmake, after cuda.cmake.
set(TESSERA_HAVE_NCCL OFF)
if(NOT TESSERA_HAVE_CUDA)
  return()
endif()
set(_tessera_nccl_hints ${TESSERA_CUDA_HINTS} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
find_path(TESSERA_NCCL_INCLUDE nccl.h HINTS ${_tessera_nccl_hints} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(TESSERA_NCCL_LIB NAMES nccl libnccl.so.2 NAMES_PER_DIR
  HINTS ${_tessera_nccl_hints} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
if(NOT TESSERA_NCCL_INCLUDE OR NOT TESSERA_NCCL_LIB)
  message(STATUS "NCCL: not found (nccl.h ${TESSERA_NCCL_INCLUDE}, libnccl ${TESSERA_NCCL_LIB}; set TESSERA_CUDA_HINTS); "
                 "no GPU comm")
  return()
endif()
message(STATUS "NCCL: the GPU comm with ${TESSERA_NCCL_LIB} (nccl.h in ${TESSERA_NCCL_INCLUDE})")
get_filename_component(_tessera_nccl_dir ${TESSERA_NCCL_LIB} DIRECTORY)
list(APPEND TESSERA_CUDA_RUNTIME_DIRS ${_tessera_nccl_dir})
set(TESSERA_HAVE_NCCL ON)
