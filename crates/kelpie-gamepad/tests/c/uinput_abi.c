/* Prints what linux/uinput.h and linux/input.h give a C compiler, for tests/uinput_abi.rs. */
#include <linux/input.h>
#include <linux/uinput.h>
#include <stddef.h>
#include <stdio.h>

int main(void) {
    printf("UI_DEV_CREATE %lx\nUI_DEV_DESTROY %lx\nUI_DEV_SETUP %lx\nUI_ABS_SETUP %lx\n", (unsigned long)UI_DEV_CREATE,
           (unsigned long)UI_DEV_DESTROY, (unsigned long)UI_DEV_SETUP, (unsigned long)UI_ABS_SETUP);
    printf("UI_SET_EVBIT %lx\nUI_SET_KEYBIT %lx\nUI_SET_ABSBIT %lx\nUI_SET_FFBIT %lx\n", (unsigned long)UI_SET_EVBIT,
           (unsigned long)UI_SET_KEYBIT, (unsigned long)UI_SET_ABSBIT, (unsigned long)UI_SET_FFBIT);
    printf("UI_BEGIN_FF_UPLOAD %lx\nUI_END_FF_UPLOAD %lx\nUI_BEGIN_FF_ERASE %lx\nUI_END_FF_ERASE %lx\n",
           (unsigned long)UI_BEGIN_FF_UPLOAD, (unsigned long)UI_END_FF_UPLOAD, (unsigned long)UI_BEGIN_FF_ERASE,
           (unsigned long)UI_END_FF_ERASE);
    printf("setup %zu\nabs_setup %zu\nuser_dev %zu\nff_effect %zu\nff_upload %zu\nff_erase %zu\n",
           sizeof(struct uinput_setup), sizeof(struct uinput_abs_setup), sizeof(struct uinput_user_dev),
           sizeof(struct ff_effect), sizeof(struct uinput_ff_upload), sizeof(struct uinput_ff_erase));
    printf("input_event %zu\n", sizeof(struct input_event));
    printf("ff_effect.replay %zu\nff_effect.u %zu\nuser_dev.absmax %zu\nabs_setup.absinfo %zu\nff_erase.effect_id %zu\n",
           offsetof(struct ff_effect, replay), offsetof(struct ff_effect, u), offsetof(struct uinput_user_dev, absmax),
           offsetof(struct uinput_abs_setup, absinfo), offsetof(struct uinput_ff_erase, effect_id));
    printf("EV_UINPUT %x\nUI_FF_UPLOAD %x\nUI_FF_ERASE %x\nFF_RUMBLE %x\nFF_GAIN %x\n", EV_UINPUT, UI_FF_UPLOAD, UI_FF_ERASE,
           FF_RUMBLE, FF_GAIN);
    return 0;
}
