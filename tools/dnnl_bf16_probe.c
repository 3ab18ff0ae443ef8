/*
 * dnnl_bf16_probe.c — does this machine's oneDNN have a bf16 convolution and matmul, and how
 * fast are they against f32? Prints oneDNN's version, the ISA it detected, and for a 3x3
 * conv (2 x 320 x 32 x 32, an SD 1.5 U-Net layer at 256x256) and a 2048x320x1280 matmul in
 * f32 and bf16: the implementation oneDNN picked and GFLOP/s, or the status when it has none
 * (3 = unimplemented). DST_F32=1 asks for an f32 destination with bf16 inputs.
 *
 *   cc -O2 tools/dnnl_bf16_probe.c -o /tmp/probe -ldnnl && OMP_NUM_THREADS=2 /tmp/probe
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
#define T(x) do{dnnl_status_t s_=(x); if(s_!=dnnl_success){printf("%s: status %d\n",#x,(int)s_); return -1;}}while(0)
static dnnl_engine_t eng; static dnnl_stream_t str;
static int conv(dnnl_data_type_t dt, int N,int C,int H){
  dnnl_dims_t sd={N,C,H,H}, wd={C,C,3,3}, dd={N,C,H,H}, st={1,1}, pl={1,1}, pr={1,1};
  dnnl_memory_desc_t s,w,d; 
  T(dnnl_memory_desc_init_by_tag(&s,4,sd,dt,dnnl_format_tag_any));
  T(dnnl_memory_desc_init_by_tag(&w,4,wd,dt,dnnl_format_tag_any));
  T(dnnl_memory_desc_init_by_tag(&d,4,dd,getenv("DST_F32")?dnnl_f32:dt,dnnl_format_tag_any));
  dnnl_convolution_desc_t cd; T(dnnl_convolution_forward_desc_init(&cd,dnnl_forward_inference,dnnl_convolution_direct,&s,&w,NULL,&d,st,pl,pr));
  dnnl_primitive_desc_t pd; T(dnnl_primitive_desc_create(&pd,&cd,NULL,eng,NULL));
  const char *impl=NULL; dnnl_primitive_desc_query(pd,dnnl_query_impl_info_str,0,&impl);
  dnnl_primitive_t p; T(dnnl_primitive_create(&p,pd));
  dnnl_memory_t ms,mw,md;
  T(dnnl_memory_create(&ms,dnnl_primitive_desc_query_md(pd,dnnl_query_src_md,0),eng,DNNL_MEMORY_ALLOCATE));
  T(dnnl_memory_create(&mw,dnnl_primitive_desc_query_md(pd,dnnl_query_weights_md,0),eng,DNNL_MEMORY_ALLOCATE));
  T(dnnl_memory_create(&md,dnnl_primitive_desc_query_md(pd,dnnl_query_dst_md,0),eng,DNNL_MEMORY_ALLOCATE));
  dnnl_exec_arg_t a[3]={{DNNL_ARG_SRC,ms},{DNNL_ARG_WEIGHTS,mw},{DNNL_ARG_DST,md}};
  double best=1e9; for(int r=0;r<3;r++){double t0=now(); T(dnnl_primitive_execute(p,str,3,a)); dnnl_stream_wait(str); double t=now()-t0; if(t<best)best=t;}
  double fl=2.0*N*C*C*9*H*H;
  printf("conv3x3 %s N=%d C=%d %dx%d: %-28s %.4f s  %.1f GFLOP/s\n", dt==dnnl_bf16?"bf16":"f32 ",N,C,H,H,impl,best,fl/best*1e-9);
  return 0;
}
static int mm(dnnl_data_type_t dt,int M,int K,int Nn){
  dnnl_dims_t ad={M,K}, bd={K,Nn}, cd={M,Nn};
  dnnl_memory_desc_t a,b,c;
  T(dnnl_memory_desc_init_by_tag(&a,2,ad,dt,dnnl_ab)); T(dnnl_memory_desc_init_by_tag(&b,2,bd,dt,dnnl_format_tag_any)); T(dnnl_memory_desc_init_by_tag(&c,2,cd,dt==dnnl_bf16?dnnl_f32:dt,dnnl_ab));
  dnnl_matmul_desc_t md; T(dnnl_matmul_desc_init(&md,&a,&b,NULL,&c));
  dnnl_primitive_desc_t pd; T(dnnl_primitive_desc_create(&pd,&md,NULL,eng,NULL));
  const char *impl=NULL; dnnl_primitive_desc_query(pd,dnnl_query_impl_info_str,0,&impl);
  dnnl_primitive_t p; T(dnnl_primitive_create(&p,pd));
  dnnl_memory_t ma,mb,mc;
  T(dnnl_memory_create(&ma,&a,eng,DNNL_MEMORY_ALLOCATE)); T(dnnl_memory_create(&mb,dnnl_primitive_desc_query_md(pd,dnnl_query_weights_md,0),eng,DNNL_MEMORY_ALLOCATE)); T(dnnl_memory_create(&mc,&c,eng,DNNL_MEMORY_ALLOCATE));
  dnnl_exec_arg_t x[3]={{DNNL_ARG_SRC,ma},{DNNL_ARG_WEIGHTS,mb},{DNNL_ARG_DST,mc}};
  double best=1e9; for(int r=0;r<3;r++){double t0=now(); T(dnnl_primitive_execute(p,str,3,x)); dnnl_stream_wait(str); double t=now()-t0; if(t<best)best=t;}
  printf("matmul %s %dx%dx%d: %-28s %.4f s  %.1f GFLOP/s\n", dt==dnnl_bf16?"bf16":"f32 ",M,K,Nn,impl,best,2.0*M*K*Nn/best*1e-9);
  return 0;
}
int main(void){
  dnnl_engine_create(&eng,dnnl_cpu,0); dnnl_stream_create(&str,eng,dnnl_stream_default_flags);
  const dnnl_version_t *v=dnnl_version(); printf("oneDNN %d.%d.%d, ISA %d\n",v->major,v->minor,v->patch,(int)dnnl_get_effective_cpu_isa());
  conv(dnnl_f32,2,320,32); conv(dnnl_bf16,2,320,32);
  mm(dnnl_f32,2048,320,1280); mm(dnnl_bf16,2048,320,1280);
  return 0;
}
