# cuda.cmake — builds kernels/cuda as the static library `tessera_cuda` when nvcc, cuBLASLt
# and cuDNN are all found; sets TESSERA_HAVE_CUDA to ON only then. Included (not added as
# a subdirectory) by the top CMakeLists.txt, in the full build and in TESSERA_CUDA_ONLY.
#
# TESSERA_CUDA_HINTS: extra folders to look in for cuDNN and cuBLASLt, each holding
# include/ and lib/ (e.g. the nvidia/cudnn folder of PyTorch's nvidia-cudnn-cu13 wheel,
# which tools/gpu-check.sh passes on a machine without Debian -dev packages).
set(TESSERA_HAVE_CUDA OFF)
set(TESSERA_CUDA_HINTS "" CACHE STRING "Folders with include/ and lib/ to search for cuDNN and cuBLASLt")

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "CUDA: no nvcc found; the CUDA library is not built")
  return()
endif()
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)     # A100 and H100/H200: machine code and PTX for each
endif()
enable_language(CUDA)
find_package(CUDAToolkit)
if(NOT CUDAToolkit_FOUND)
  message(STATUS "CUDA: nvcc found but not the toolkit's libraries; the CUDA library is not built")
  return()
endif()

set(_tessera_cuda_hints ${TESSERA_CUDA_HINTS} ${CUDAToolkit_LIBRARY_ROOT} ${CUDAToolkit_TARGET_DIR})
find_path(TESSERA_CUDNN_INCLUDE cudnn.h
  HINTS ${_tessera_cuda_hints} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
# NAMES_PER_DIR: the first folder that has either name wins, so a hinted wheel's library
# goes with that wheel's header
find_library(TESSERA_CUDNN_LIB NAMES cudnn libcudnn.so.9 NAMES_PER_DIR
  HINTS ${_tessera_cuda_hints} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
find_path(TESSERA_CUBLASLT_INCLUDE cublasLt.h
  HINTS ${CUDAToolkit_INCLUDE_DIRS} ${_tessera_cuda_hints} PATH_SUFFIXES include)
find_library(TESSERA_CUBLASLT_LIB NAMES cublasLt libcublasLt.so.13 NAMES_PER_DIR
  HINTS ${CUDAToolkit_LIBRARY_DIR} ${_tessera_cuda_hints} PATH_SUFFIXES lib lib64)
foreach(v TESSERA_CUDNN_INCLUDE TESSERA_CUDNN_LIB TESSERA_CUBLASLT_INCLUDE TESSERA_CUBLASLT_LIB)
  if(NOT ${v})
    message(STATUS "CUDA: ${v} not found (set TESSERA_CUDA_HINTS); the CUDA library is not built")
    return()
  endif()
endforeach()
message(STATUS "CUDA: building kernels/cuda for sm ${CMAKE_CUDA_ARCHITECTURES} (cuDNN ${TESSERA_CUDNN_LIB}, cuBLASLt ${TESSERA_CUBLASLT_LIB})")

# the .cu kernels and the backend table (cuda_backend.c, host C)
file(GLOB _tessera_cuda_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu ${CMAKE_SOURCE_DIR}/kernels/cuda/*.c)
add_library(tessera_cuda STATIC ${_tessera_cuda_sources})
# The C flags of the top file (-Wall, -march=native, ...) mean nothing to nvcc.
set_property(TARGET tessera_cuda PROPERTY COMPILE_OPTIONS "")
target_compile_options(tessera_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-O3 -Xcompiler=-Wall>)
set_target_properties(tessera_cuda PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
target_include_directories(tessera_cuda PUBLIC ${CMAKE_SOURCE_DIR})
target_include_directories(tessera_cuda PRIVATE ${TESSERA_CUDNN_INCLUDE} ${TESSERA_CUBLASLT_INCLUDE})
target_compile_definitions(tessera_cuda PUBLIC TESSERA_HAVE_CUDA=1 PRIVATE _GNU_SOURCE)
target_link_libraries(tessera_cuda PUBLIC CUDA::cudart_static ${TESSERA_CUBLASLT_LIB} ${TESSERA_CUDNN_LIB})
# The libraries may live in a wheel's folder: the programs find them there at run time.
get_filename_component(_tessera_cudnn_dir ${TESSERA_CUDNN_LIB} DIRECTORY)
get_filename_component(_tessera_cublaslt_dir ${TESSERA_CUBLASLT_LIB} DIRECTORY)
set(TESSERA_CUDA_RUNTIME_DIRS ${_tessera_cudnn_dir} ${_tessera_cublaslt_dir})
set(TESSERA_HAVE_CUDA ON)
